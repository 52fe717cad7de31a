import { AppError } from './errors.js';

/**
 * The E2LLM chunker. A chunk is at most `chunkChars` characters (Unicode code points); its end is cut back from that
 * limit to the last sentence end or line break, then to the last word boundary, and only when there is neither is it
 * cut hard. Cuts fall on grapheme-cluster boundaries (emoji sequences, combining marks and CRLF stay whole); the one
 * exception is a single grapheme longer than the limit, which is cut between code points because nothing else fits.
 * With a token counter, a chunk that tokenizes to more than `maxTokens` is split again, smaller, until it fits.
 */
export interface ChunkOptions {
  /** Target chunk size in code points (the paper: about 512). */
  chunkChars: number;
  /** Characters the next chunk repeats from the end of the previous one (0: none, the paper's default). */
  overlapChars?: number;
  /** The most tokens a chunk may have; needs countTokens. */
  maxTokens?: number;
  /** Counts a chunk's tokens as the encoder will see them (special tokens included). */
  countTokens?: (text: string) => number;
  /**
   * Stop once the document has more chunks than this (only `limit + 1` are returned): a caller that refuses a
   * document over its window need not tokenize the rest of it.
   */
  limit?: number;
}

export interface Chunk {
  index: number;
  /** Offset of the first UTF-16 code unit in the source text. */
  start: number;
  /** Offset one past the last UTF-16 code unit. */
  end: number;
  text: string;
}

const graphemes = new Intl.Segmenter('en', { granularity: 'grapheme' });
const SENTENCE_END = new Set(['.', '!', '?', '…', '‼', '⁇', '⁈', '⁉']);
/** Sentence ends that need no following space (CJK full-width punctuation). */
const SENTENCE_END_NO_SPACE = new Set(['。', '！', '？', '｡']);
const CLOSERS = new Set(['"', "'", ')', ']', '}', '”', '’', '»', '」', '』', '）']);
const ASCII = /^[\x00-\x7f]*$/;
const LINE_BREAKS = new Set(['\n', '\r\n', '\r', '\u2028', '\u2029', '\u0085']);

export function chunkText(text: string, options: ChunkOptions): Chunk[] {
  const { chunkChars, overlapChars = 0, maxTokens, countTokens, limit = Infinity } = options;
  if (!Number.isInteger(chunkChars) || chunkChars < 1) throw new AppError('INPUT_INVALID', 'chunkChars must be a positive integer');
  if (!Number.isInteger(overlapChars) || overlapChars < 0 || overlapChars >= chunkChars) {
    throw new AppError('INPUT_INVALID', 'overlapChars must be a non-negative integer smaller than chunkChars');
  }
  if ((maxTokens === undefined) !== (countTokens === undefined)) {
    throw new AppError('INPUT_INVALID', 'maxTokens and countTokens go together');
  }
  const spans = chunkRange(text, 0, text.length, chunkChars, overlapChars, limit + 1);
  let fitted = spans;
  if (maxTokens !== undefined) {
    fitted = [];
    for (const s of spans) {
      if (fitted.length > limit) break;
      fitted.push(...fitTokens(text, s, maxTokens, countTokens!));
    }
  }
  return fitted.slice(0, limit + 1).map(([start, end], index) => ({ index, start, end, text: text.slice(start, end) }));
}

type Span = [start: number, end: number];

function fitTokens(text: string, span: Span, maxTokens: number, countTokens: (t: string) => number): Span[] {
  const piece = text.slice(span[0], span[1]);
  if (countTokens(piece) <= maxTokens) return [span];
  const cps = countCodePoints(piece);
  if (cps <= 1) {
    throw new AppError('INPUT_INVALID', `one character tokenizes to more than ${maxTokens} tokens: maxTokens is too small`);
  }
  const smaller = chunkRange(text, span[0], span[1], Math.max(1, Math.floor(cps / 2)), 0);
  return smaller.flatMap((s) => fitTokens(text, s, maxTokens, countTokens));
}

/**
 * Splits text[from, to) into spans of at most chunkChars code points. Graphemes are segmented one window at a time:
 * V8's Intl.Segmenter slows down superlinearly on long strings (180k characters took 35 s), and a cluster never
 * depends on text before the boundary it starts at.
 */
function chunkRange(text: string, from: number, to: number, chunkChars: number, overlapChars: number, maxSpans = Infinity): Span[] {
  const spans: Span[] = [];
  let pos = from;
  let prevEnd = from;
  while (pos < to && spans.length < maxSpans) {
    // Enough code units for more than chunkChars code points, whatever the tail unit that is dropped below.
    const sliceEnd = Math.min(to, pos + 4 * chunkChars + 64);
    // Only the units up to one past chunkChars code points are ever looked at (the cut, the word after it, the
    // overlap): units() stops two units past that, which is most of the chunker's time saved on long documents.
    const { bounds, cps, complete } = units(text, pos, sliceEnd, chunkChars, chunkChars + 2);
    if (complete && sliceEnd < to) {
      // The last cluster may continue past the window: its end is not a boundary yet.
      bounds.pop();
      cps.pop();
    }
    const last = bounds.length - 1;
    const unit = (k: number) => text.slice(bounds[k - 1], bounds[k]); // the unit that ends at boundary k
    const isSpace = (k: number) => /^\s+$/u.test(unit(k));

    // The furthest boundary within chunkChars code points of pos.
    let e = 1;
    while (e < last && cps[e + 1]! <= chunkChars) e++;
    const reachesEnd = sliceEnd === to && e === last;
    if (!reachesEnd) {
      // With overlap, a cut at or before the previous end would repeat a chunk already inside the previous one.
      const lo = prevEnd > pos ? bounds.indexOf(prevEnd) : 0;
      e = cutBack(lo, e, unit, isSpace, last);
    }
    spans.push([pos, bounds[e]!]);
    if (reachesEnd) break;
    prevEnd = bounds[e]!;
    let next = e;
    if (overlapChars > 0) {
      next = 1;
      while (next < e && cps[e]! - cps[next]! > overlapChars) next++;
      // Start the overlap on a word when one starts inside it.
      let w = next;
      while (w < e && !(isSpace(w) && !isSpace(w + 1))) w++;
      if (w < e) next = w;
      // The next chunk must reach past this one's end, or it would lie wholly inside it: shorten the overlap.
      while (next < e && cps[e + 1]! - cps[next]! > chunkChars) next++;
    }
    pos = bounds[next]!;
  }
  return spans;
}

/** The best cut in (lo, e]: the last sentence end or line break, else the last word boundary, else e itself. */
function cutBack(lo: number, e: number, unit: (k: number) => string, isSpace: (k: number) => boolean, last: number): number {
  let word = -1;
  for (let k = e; k > lo; k--) {
    const u = unit(k);
    if (LINE_BREAKS.has(u) || SENTENCE_END_NO_SPACE.has(u)) return k;
    const nextIsWord = k === last || !isSpace(k + 1);
    if (nextIsWord && isSpace(k)) {
      let j = k;
      while (j > lo && isSpace(j)) j--;
      while (j > lo && CLOSERS.has(unit(j))) j--;
      if (j > lo && SENTENCE_END.has(unit(j))) return k;
      if (word < 0) word = k;
    }
  }
  return word > 0 ? word : e;
}

/**
 * Unit boundaries of text[from, to): grapheme clusters, except that a cluster longer than maxCps code points is cut
 * into pieces of maxCps. bounds[k] is the UTF-16 offset of boundary k; cps[k] the code points before it.
 *
 * Stops at the first boundary with at least `stopCps` code points before it (complete: false). Every boundary
 * returned then is final: the segmenter ends a cluster only once it has seen what follows, and in the ASCII fast path
 * the stop comes while the next character is still ASCII and in the tested prefix.
 */
function units(text: string, from: number, to: number, maxCps: number, stopCps: number): { bounds: number[]; cps: number[]; complete: boolean } {
  const bounds: number[] = [from];
  const cps: number[] = [0];
  let count = 0;
  // In ASCII a code point is a character: an ASCII prefix this long reaches stopCps with characters to spare.
  const asciiEnd = Math.min(to, from + 2 * stopCps + 8);
  const prefix = text.slice(from, asciiEnd);
  if (ASCII.test(prefix)) {
    // Fast path: in ASCII every character is a cluster of its own, except CR LF.
    for (let i = 0; i < prefix.length; i++) {
      if (prefix.charCodeAt(i) === 13 && prefix.charCodeAt(i + 1) === 10) i++;
      count = i + 1;
      bounds.push(from + count);
      cps.push(count);
      // The next character is ASCII and in the prefix, so this boundary is final (a CR here was not before LF).
      if (count >= stopCps && from + count < asciiEnd) return { ...splitLong(bounds, cps, maxCps), complete: false };
    }
    if (asciiEnd === to) return { ...splitLong(bounds, cps, maxCps), complete: true };
    throw new Error(`the ASCII prefix of ${prefix.length} characters held fewer than ${stopCps} units (this is a bug)`);
  }
  const slice = text.slice(from, to);
  for (const { segment, index } of graphemes.segment(slice)) {
    let n = 0;
    let at = from + index;
    for (const ch of segment) {
      if (n === maxCps) {
        bounds.push(at);
        cps.push(count);
        n = 0;
      }
      n++;
      count++;
      at += ch.length;
    }
    bounds.push(at);
    cps.push(count);
    if (count >= stopCps && at < to) return { bounds, cps, complete: false };
  }
  return { bounds, cps, complete: true };
}

/** ASCII units are one character, or two for CR LF, so only maxCps = 1 can need a split. */
function splitLong(bounds: number[], cps: number[], maxCps: number): { bounds: number[]; cps: number[] } {
  if (maxCps > 1) return { bounds, cps };
  const b: number[] = [bounds[0]!];
  const c: number[] = [0];
  for (let k = 1; k < bounds.length; k++) {
    for (let x = bounds[k - 1]! + 1; x <= bounds[k]!; x++) {
      b.push(x);
      c.push(c.at(-1)! + 1);
    }
  }
  return { bounds: b, cps: c };
}

/** Code points of a string: its UTF-16 units less one per surrogate pair (a lone surrogate counts as one). */
export function countCodePoints(s: string): number {
  // The regular-expression engine finds pairs several times faster than a loop over the units (the API counts
  // millions of characters on its event loop before it accepts a document).
  let pairs = 0;
  const pair = /[\uD800-\uDBFF][\uDC00-\uDFFF]/g;
  while (pair.exec(s) !== null) pairs++;
  return s.length - pairs;
}
