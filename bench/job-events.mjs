import { parseSse } from '@lib/client';

/**
 * Waits on a job's event stream (GET /v1/jobs/:id/events) until its terminal status arrives and returns that job
 * object; throws if it failed or was cancelled, or if the stream ends first. The server writes the event when the job
 * ends, so no poll interval adds to a measured time and no polling loads the server while it works. The stream is read
 * with the client library's parser (eventsource-parser).
 */
export async function jobEnd(base, id, authorization, limitMs = 300_000) {
  const res = await fetch(`${base}/v1/jobs/${id}/events`, { headers: { authorization }, signal: AbortSignal.timeout(limitMs) });
  if (res.status >= 400) throw new Error(`events of ${id}: ${res.status}`);
  for await (const { event, data } of parseSse(res.body)) {
    if (event !== 'status') continue;
    const job = JSON.parse(data);
    if (job.object !== 'job' || !['succeeded', 'failed', 'cancelled'].includes(job.status)) continue;
    if (job.status !== 'succeeded') throw new Error(`job ${id} ${job.status}: ${JSON.stringify(job.error)}`);
    return job;
  }
  throw new Error(`the event stream of job ${id} ended before the job did`);
}
