export * from './errors.js';
export * from './header-list.js';
export * from './header-names.js';
export * from './header-values.js';
export * from './sip-message.js';
export * from './parser.js';
export * from './serializer.js';
export * from './builders.js';
