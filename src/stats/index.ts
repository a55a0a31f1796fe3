/** The statistics module's public surface: pure functions, no I/O. */
export { StatsInputError } from './errors.js';
export { mulberry32, normalDraw } from './rng.js';
export type { Rng } from './rng.js';
export { median, medianSorted, quantile, quantileSorted, sortedCopy } from './quantile.js';
export { formatP, pEquals } from './format.js';
export { summarize } from './summary.js';
export type { Summary } from './summary.js';
export { mannWhitney, MW_EXACT_MAX_N } from './mannWhitney.js';
export type { MannWhitneyOptions, MannWhitneyResult } from './mannWhitney.js';
export { wilcoxonSignedRank, wilcoxonMinP, WILCOXON_EXACT_MAX_N } from './wilcoxon.js';
export type { WilcoxonOptions, WilcoxonResult } from './wilcoxon.js';
export { ksStatistic, ksTest, kolmogorovSf } from './ks.js';
export type { KsResult } from './ks.js';
export { bootstrapMedianRatio, bootstrapPairedMedianRatio, clusterBootstrapRatio, BOOTSTRAP_DEFAULTS } from './bootstrap.js';
export type { BootstrapCI, BootstrapOptions, ClusterCi } from './bootstrap.js';
export { studentTwoSidedP, incompleteBeta } from './studentT.js';
export { welchLogTest } from './welch.js';
export type { WelchResult } from './welch.js';
export { unpairedRunTest } from './unpaired.js';
export type { UnpairedTest } from './unpaired.js';
export {
  compareSamples,
  comparePaired,
  decide,
  shapeNote,
  describeThresholds,
  DEFAULT_ALPHA,
  DEFAULT_EQUIVALENCE_BAND,
  DEFAULT_MIN_ROUNDS,
  DEFAULT_MIN_SAMPLES,
} from './verdict.js';
export type { Comparison, CompareOptions, DecideInput, Verdict } from './verdict.js';
export { detectSteps, DEFAULT_CHANGEPOINT_ALPHA, DEFAULT_MIN_CHANGE } from './changepoint.js';
export type { BuildSamples, ChangepointOptions, ChangepointResult, StepKind, StepTest } from './changepoint.js';
export { boxStats } from './box.js';
export type { BoxStats } from './box.js';
