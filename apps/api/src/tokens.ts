/** Injection tokens of the API's providers. */
export const CONFIG = Symbol('CONFIG');
export const BLOBS = Symbol('BLOBS');
export const STORE = Symbol('STORE');
export const PIPELINE = Symbol('PIPELINE');
export const REDIS = Symbol('REDIS');
export const MODEL_INFO = Symbol('MODEL_INFO');
export const PLANNER = Symbol('PLANNER');
export const EXTRACTOR = Symbol('EXTRACTOR');
export const JSON_BODIES = Symbol('JSON_BODIES');
export const LOGGER = Symbol('LOGGER');
export const WEBHOOK_TARGETS = Symbol('WEBHOOK_TARGETS');
