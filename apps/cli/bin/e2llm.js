#!/usr/bin/env node
// Committed with its exec bit so the bin works right after `npm ci` (the build output does not exist when npm links bins).
import { main } from '../dist/main.js';

process.exitCode = await main(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env });
