// Generated from the command-service's /openapi.json by `npm run generate` (scripts/generate.mjs): do not edit.
export {};
