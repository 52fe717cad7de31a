import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Controller, Get, Header } from '@nestjs/common';
import { CONSOLE_CSP, CONSOLE_HTML } from './console.page.js';

/** eventsource-parser's ES module, read once from the installed package: the console imports it, no CDN, no copy. */
const SSE_PARSER = readFileSync(join(dirname(createRequire(import.meta.url).resolve('eventsource-parser/package.json')), 'dist/index.js'), 'utf8');

/** GET / serves the web console: a static page that uses the public API from the browser. */
@Controller()
export class ConsoleController {
  @Get()
  @Header('Content-Type', 'text/html; charset=utf-8')
  @Header('Content-Security-Policy', CONSOLE_CSP)
  @Header('X-Content-Type-Options', 'nosniff')
  @Header('Referrer-Policy', 'no-referrer')
  @Header('Cache-Control', 'no-cache')
  page(): string {
    return CONSOLE_HTML;
  }

  @Get('console/assets/eventsource-parser.js')
  @Header('Content-Type', 'text/javascript; charset=utf-8')
  @Header('X-Content-Type-Options', 'nosniff')
  @Header('Cache-Control', 'public, max-age=3600')
  sseParser(): string {
    return SSE_PARSER;
  }
}
