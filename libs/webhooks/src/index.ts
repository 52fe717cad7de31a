export { isForbiddenAddress, type AddressPolicy } from './address-policy.js';
export { checkWebhookUrl, MAX_WEBHOOK_URL_LENGTH } from './webhook-url.js';
export {
  deliverWebhook,
  generateWebhookSecret,
  MAX_RESPONSE_BODY_BYTES,
  type Delivery,
  type DeliveryOutcome,
  type DeliverWebhookOptions,
  type HostResolver,
} from './deliver-webhook.js';
