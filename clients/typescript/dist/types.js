// The wire types the library speaks, by the names its callers use: each is a schema of the services' OpenAPI
// documents, generated into `generated/` (`npm run generate`; a test fails when they are stale).
export {};
