import { dimensionSizes, gridPoints, isCandidate, pointKey, type SearchSpace, type SpacePoint } from './tune-space.ts';

/** Measures one candidate; higher scores are better, 0 when it cannot meet the budget at all. */
export type Evaluate = (point: SpacePoint) => Promise<number>;

export interface SearchOutcome {
  best: SpacePoint | undefined;
  bestScore: number;
  /** Candidates measured, in order. */
  trials: number;
}

export type SearchStrategy = 'quick' | 'grid';
export const SEARCH_STRATEGIES: readonly SearchStrategy[] = ['quick', 'grid'];

/** Measures every candidate of the space. */
export async function gridSearch(space: SearchSpace, evaluate: Evaluate): Promise<SearchOutcome> {
  let best: SpacePoint | undefined;
  let bestScore = 0;
  const points = gridPoints(space);
  for (const point of points) {
    const score = await evaluate(point);
    if (score > bestScore) {
      best = point;
      bestScore = score;
    }
  }
  return { best, bestScore, trials: points.length };
}

/**
 * Coordinate hill climbing from `start`: along each setting in turn, step to the neighbouring value while the
 * score improves by more than `minGain` (a fraction, to ride over measurement noise), trying up then down;
 * stop after a full pass over the settings moves nowhere. Each candidate is measured once.
 */
export async function hillClimb(
  space: SearchSpace,
  start: SpacePoint,
  evaluate: Evaluate,
  minGain = 0.03,
): Promise<SearchOutcome> {
  const sizes = dimensionSizes(space);
  const scores = new Map<string, number>();
  const measure = async (point: SpacePoint): Promise<number> => {
    const key = pointKey(point);
    let score = scores.get(key);
    if (score === undefined) {
      score = await evaluate(point);
      scores.set(key, score);
    }
    return score;
  };
  let current: SpacePoint = [...start];
  let currentScore = await measure(current);
  let moved = true;
  while (moved) {
    moved = false;
    for (let dim = 0; dim < sizes.length; dim++) {
      for (const direction of [1, -1]) {
        let improvedThisWay = false;
        for (;;) {
          const next = [...current] as SpacePoint;
          next[dim]! += direction;
          if (next[dim]! < 0 || next[dim]! >= sizes[dim]!) break;
          // A point that is not a candidate (e.g. a delay without batching) is stepped over, not measured.
          if (!isCandidate(space, next)) break;
          const score = await measure(next);
          if (score > currentScore * (1 + minGain) || (currentScore === 0 && score > 0)) {
            current = next;
            currentScore = score;
            improvedThisWay = true;
            moved = true;
          } else {
            break;
          }
        }
        if (improvedThisWay) break;
      }
    }
  }
  return { best: currentScore > 0 ? current : undefined, bestScore: currentScore, trials: scores.size };
}
