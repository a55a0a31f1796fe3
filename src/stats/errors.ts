/**
 * The one error the statistics module throws: its input was unusable (too few
 * samples, a NaN, mismatched lengths). Callers can tell it apart from bugs.
 */
export class StatsInputError extends Error {
  override readonly name = 'StatsInputError';
}
