/**
 * Waits on a job's event stream (GET /v1/jobs/:id/events) until its terminal status arrives and returns that job
 * object; throws if it failed or was cancelled, or if the stream ends first. The server writes the event when the job
 * ends, so no poll interval adds to a measured time and no polling loads the server while it works.
 */
export async function jobEnd(base, id, authorization, limitMs = 300_000) {
  const res = await fetch(`${base}/v1/jobs/${id}/events`, { headers: { authorization }, signal: AbortSignal.timeout(limitMs) });
  if (res.status >= 400) throw new Error(`events of ${id}: ${res.status}`);
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (value) buf += dec.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (!/^event: status$/m.test(block) || !data) continue;
      const job = JSON.parse(data);
      if (job.object !== 'job' || !['succeeded', 'failed', 'cancelled'].includes(job.status)) continue;
      await reader.cancel().catch(() => undefined);
      if (job.status !== 'succeeded') throw new Error(`job ${id} ${job.status}: ${JSON.stringify(job.error)}`);
      return job;
    }
    if (done) throw new Error(`the event stream of job ${id} ended before the job did`);
  }
}
