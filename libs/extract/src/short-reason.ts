/** A parser's error message, cut short: it goes into a user-facing message and may quote the document. */
export function shortReason(err: unknown): string {
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s+/g, ' ').trim() || 'unknown error';
  return message.length > 160 ? `${message.slice(0, 160)}…` : message;
}
