/** The credential of an `Authorization: Bearer <credential>` header (an API key or a user JWT), or undefined. */
export function bearerCredential(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)$/i.exec(header ?? '')?.[1];
}
