export { startTestS3Server, type TestS3Server } from './s3-server.js';
