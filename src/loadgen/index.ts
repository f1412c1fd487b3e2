/** Programmatic API of the load generator (`tandem load`). */
export { runLoad, type RunLoadOptions, type LoadResult } from './run-load.js';
export { startUas, UasServer, type UasOptions, type UasRtpMode } from './uas.js';
export { UacEngine, type UacEngineOptions, type LoadScenario } from './uac.js';
export { figuresOf, formatSummary, type LoadFigures } from './report.js';
export { mergeSnapshots, type LoadSnapshot, type RtpTotals } from './stats.js';
export { parseUsersCsv, readUsersFile, type LoadUser } from './users.js';
export { readWavFile, parseWav, type G711Audio } from './rtp/wav.js';
