import { describe, expect, it } from 'vitest';
import { postprocessPrediction, scoreRuler, stringMatchAllOne, stringMatchPartOne } from './scoring.js';

describe('RULER scorers', () => {
  it('string_match_all is the share of references found, case-insensitively, averaged over samples, on 0-100', () => {
    const preds = ['The numbers are 1234567 and 7654321.', 'I found 1234567 only', 'NOTHING here', 'Alpha-Lion beta-cat'];
    const refs = [['1234567', '7654321'], ['1234567', '7654321'], ['1111111'], ['alpha-lion', 'Beta-Cat', 'gamma-dog', 'delta-owl']];
    // (1 + 0.5 + 0 + 0.5) / 4 = 0.5
    expect(scoreRuler('string_match_all', preds, refs)).toBe(50);
    expect(stringMatchAllOne('a b c', ['A', 'x', 'C'])).toBeCloseTo(2 / 3);
  });

  it('string_match_part counts a sample as right when any reference is found', () => {
    const preds = ['Paris, France', 'no idea', 'it is LONDON'];
    const refs = [['Paris', 'Lyon'], ['Rome'], ['london', 'uk']];
    expect(scoreRuler('string_match_part', preds, refs)).toBe(66.67);
    expect(stringMatchPartOne('x', ['y', 'z'])).toBe(0);
  });

  it('rounds to two decimals and cleans control characters as RULER does', () => {
    expect(scoreRuler('string_match_all', ['a', 'b', 'c'], [['a'], ['x'], ['x']])).toBe(33.33);
    expect(postprocessPrediction('  12\t34\u0000 ')).toBe('12\n34');
    // A reference split by a control character does not match after cleaning, as in RULER.
    expect(scoreRuler('string_match_all', ['12\t34'], [['12 34']])).toBe(0);
  });

  it('refuses mismatched inputs', () => {
    expect(() => scoreRuler('string_match_all', ['a'], [])).toThrow(/bug/);
  });
});
