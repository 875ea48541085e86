/**
 * Server-side validation of the contract: class-validator DTOs for every command payload.
 * Kept out of the main `@app/protocol` entry so browser clients do not pull in
 * class-validator; import from `@app/protocol/dto`.
 */
export * from './command-payloads.dto';
export * from './decorators';
export * from './validate';
