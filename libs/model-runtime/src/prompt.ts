import { assertNever, type ModelManifest, type Task } from '@lib/shared';

/**
 * The prompt text around the soft tokens for a task. The template is split at the placeholder first and the
 * question filled in after, in one pass, so a question that contains the placeholder or `{instruction}` stays text.
 */
export function promptParts(prompt: ModelManifest['prompt'], task: Task): { prefix: string; suffix: string } {
  const [prefix, suffix] = prompt.templates[task.type].split(prompt.placeholder) as [string, string];
  const vars: Record<string, string> = {};
  switch (task.type) {
    case 'qa':
      vars.question = task.question;
      break;
    case 'instruct':
      vars.instruction = task.instruction;
      break;
    case 'summarize':
    case 'reconstruct':
      break;
    default:
      assertNever(task, 'task type');
  }
  const fill = (s: string) => s.replace(/\{(question|instruction)\}/g, (_, k: string) => vars[k] ?? '');
  return { prefix: fill(prefix), suffix: fill(suffix) };
}
