/** Experiment reports of `tandem lab run`: report.md, report.json and PNG plots. */
export { writeExperimentReport, readExperimentData, reportDirName, REPORT_SCHEMA } from './write-report.js';
export { computeFigures, availabilityOf, percentiles } from './figures.js';
export { PUBLISHED_FIGURES, PUBLISHED_MTBF_HOURS, publishedFor, type PublishedFigure } from './published.js';
export { formatAvailability, formatDuration } from './format.js';
export type * from './types.js';
