#!/usr/bin/env node
// Entry point for `npx stowage`; the compiled CLI lives in dist/ (built by `npm ci` via the prepare script).
import '../dist/src/cli/main.js';
