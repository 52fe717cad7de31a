import { Controller, Get, Header } from '@nestjs/common';
import { CONSOLE_CSP, CONSOLE_HTML } from './console.page.js';

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
}
