export { isForbiddenAddress, type AddressPolicy } from './address-policy.js';
export { checkWebhookUrl, hostKindWithoutDns, MAX_WEBHOOK_URL_LENGTH } from './webhook-url.js';
export { assertResolvedAllowed, systemResolver, WebhookTargets, type HostResolver, type WebhookTargetsOptions } from './resolve-host.js';
export {
  deliverWebhook,
  generateWebhookSecret,
  MAX_RESPONSE_BODY_BYTES,
  type Delivery,
  type DeliveryOutcome,
  type DeliverWebhookOptions,
} from './deliver-webhook.js';
