export * from './model-package.js';
export * from './tokenizer.js';
export * from './sessions.js';
export * from './encoder.js';
export * from './decoder.js';
export * from './sampling.js';
export * from './prompt.js';
export * from './e2llm-model.js';
