import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import MiniSearch from 'minisearch';
import { stemmer } from 'stemmer';
import { eng as ENGLISH_STOPWORDS } from 'stopword';
import type { Evidence, EvidenceScorer } from '@lib/shared';

/** A chunk with its text and UTF-16 offsets in the document. */
export interface TextChunk {
  index: number;
  start: number;
  end: number;
  text: string;
}

/** How many evidence chunks an answer lists at least (the expanded ones are always listed). */
export const EVIDENCE_LIST_SIZE = 5;

const STOPWORDS = new Set(ENGLISH_STOPWORDS);
/** A word, with its hyphenated or apostrophe'd compound kept together: "foggy-library", a UUID, "licensee's". */
const WORD = /[\p{L}\p{N}]+(?:[-'_][\p{L}\p{N}]+)*/gu;

/**
 * Terms of a text: each word, and for a compound also its parts. The compound itself is what tells one key from
 * another that shares a part ("foggy-library" and "lazy-library"; two UUIDs that share a group); the parts still
 * match a question that writes them apart.
 */
function terms(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(WORD)) {
    const w = m[0];
    out.push(w);
    if (w.length > 1 && /[-'_]/.test(w)) out.push(...w.split(/[-'_]/));
  }
  return out;
}

/**
 * A term as both the index and the query see it: lowercased, English stopwords dropped, Porter-stemmed, so that
 * "number" in a question meets "numbers" in the text (without it the one chunk that says "number" outranked the
 * needle's chunk).
 */
function indexTerm(term: string): string | null {
  const t = term.toLowerCase();
  return STOPWORDS.has(t) ? null : stemmer(t);
}

/**
 * BM25 of the query against each chunk's text, by MiniSearch's index (BM25+), over stemmed terms without stopwords,
 * compounds indexed whole and by their parts. A chunk that shares no term with the query scores 0.
 * The question's rare words (a key, a name) dominate through their inverse document frequency, which is what finds
 * a needle's chunk among chunks full of the question's common words.
 */
export function bm25Scores(query: string, chunks: readonly TextChunk[], cacheScope?: string): Float64Array {
  const scores = new Float64Array(chunks.length);
  if (chunks.length === 0 || query.trim() === '') return scores;
  const index = chunkIndex(chunks, cacheScope);
  for (const hit of index.search(query, { combineWith: 'OR', prefix: false, fuzzy: false })) scores[hit.id as number] = hit.score;
  return scores;
}

type ChunkIndex = MiniSearch<{ id: number; text: string }>;
/** The last few documents' indexes, by scope and chunk texts: a question asked again on a document skips indexing it. */
const recentIndexes = new LRUCache<string, ChunkIndex>({ max: 4 });

/**
 * The chunks' index: built (stemming every word: about 80 ms for 1,000 chunks on one core), or the one built for the
 * same chunk texts in the same scope lately. The scope (the tenant) keeps one tenant from learning, by time, that
 * another asked about the same text, as the soft-prompt cache does; without one nothing is kept.
 */
function chunkIndex(chunks: readonly TextChunk[], scope?: string): ChunkIndex {
  let key: string | undefined;
  if (scope !== undefined) {
    const h = createHash('sha256').update(scope).update('\0');
    for (const c of chunks) h.update(c.text).update('\0');
    key = h.digest('hex');
    const hit = recentIndexes.get(key);
    if (hit) return hit;
  }
  const index: ChunkIndex = new MiniSearch({ fields: ['text'], idField: 'id', storeFields: [], tokenize: terms, processTerm: indexTerm });
  index.addAll(chunks.map((c, i) => ({ id: i, text: c.text })));
  if (key !== undefined) recentIndexes.set(key, index);
  return index;
}

/** Indices ordered by score, best first; ties keep document order. Only scores above 0 are ranked. */
export function rankByScore(scores: ArrayLike<number>): number[] {
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) if (scores[i]! > 0) idx.push(i);
  return idx.sort((a, b) => scores[b]! - scores[a]! || a - b);
}

/** Reciprocal rank fusion (k = 60, as Cormack et al. 2009) of several rankings over the same chunks. */
export function fuseRanks(n: number, rankings: readonly number[][]): Float64Array {
  const out = new Float64Array(n);
  for (const ranking of rankings) ranking.forEach((i, r) => (out[i]! += 1 / (60 + r + 1)));
  return out;
}

/** The 1-based page of a text offset, from the sorted start offsets of the pages (PDF extraction). */
export function pageOf(offset: number, pageStarts: readonly number[]): number {
  let lo = 0;
  let hi = pageStarts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (pageStarts[mid]! <= offset) lo = mid + 1;
    else hi = mid;
  }
  return Math.max(1, lo);
}

export interface ChunkScores {
  bm25?: Float64Array;
  attention?: Float64Array;
}

/**
 * The scores a scorer ranks by, or null when it has nothing to rank with (no question for BM25, a package without the
 * attention output). Fusion uses whichever of the two exists.
 */
export function scoresFor(scorer: EvidenceScorer, s: ChunkScores, n: number): Float64Array | null {
  switch (scorer) {
    case 'bm25':
      return s.bm25 ?? null;
    case 'attention':
      return s.attention ?? null;
    case 'fusion': {
      const rankings = [s.bm25, s.attention].filter((x): x is Float64Array => x !== undefined).map(rankByScore);
      return rankings.length === 0 ? null : fuseRanks(n, rankings);
    }
  }
}

/**
 * The evidence list: the chunks ranked by the configured scorer (falling back to the other one when it has nothing),
 * at least EVIDENCE_LIST_SIZE of them and every expanded one, best first.
 */
export function buildEvidence(
  chunks: readonly TextChunk[],
  scores: ChunkScores,
  scorer: EvidenceScorer,
  expanded: ReadonlySet<number>,
  pageStarts?: readonly number[],
): Evidence[] {
  const fallback: EvidenceScorer = scorer === 'attention' ? 'bm25' : 'attention';
  const ranked = scoresFor(scorer, scores, chunks.length) ?? scoresFor(fallback, scores, chunks.length);
  if (!ranked) return [];
  const order = rankByScore(ranked);
  const keep = order.filter((i, r) => r < EVIDENCE_LIST_SIZE || expanded.has(i));
  return keep.map((i) => {
    const c = chunks[i]!;
    return {
      chunkIndex: c.index,
      charStart: c.start,
      charEnd: c.end,
      ...(pageStarts && pageStarts.length > 0 ? { page: pageOf(c.start, pageStarts) } : {}),
      score: ranked[i]!,
      expanded: expanded.has(i),
      text: c.text,
    };
  });
}
