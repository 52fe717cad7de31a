export * from './errors.js';
export * from './config.js';
export * from './model-contract.js';
export * from './soft-prompt-blob.js';
export * from './f16.js';
export * from './storage-keys.js';
export * from './chunker.js';
export * from './text-input.js';
