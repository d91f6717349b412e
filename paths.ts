import { fileURLToPath } from 'node:url'

// Compiled to dist/paths.js, so the package root is one level up from this file.
export const packageRoot = fileURLToPath(new URL('..', import.meta.url))
export const modelsDir = fileURLToPath(new URL('../models/', import.meta.url))
