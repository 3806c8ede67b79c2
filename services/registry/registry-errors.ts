/**
 * Errors in Confluent Schema Registry's shape: HTTP status plus `error_code` and `message`,
 * so `@kafkajs/confluent-schema-registry` and other Confluent clients read them unmodified.
 */
export class RegistryError extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: number,
    message: string,
  ) {
    super(message)
    this.name = 'RegistryError'
  }

  toJSON(): { error_code: number; message: string } {
    return { error_code: this.errorCode, message: this.message }
  }
}

export const registryErrors = {
  subjectNotFound: (s: string) => new RegistryError(404, 40401, `Subject '${s}' not found.`),
  versionNotFound: (v: string | number) => new RegistryError(404, 40402, `Version ${v} not found.`),
  schemaNotFound: (what = 'Schema') => new RegistryError(404, 40403, `${what} not found.`),
  subjectSoftDeleted: (s: string) => new RegistryError(404, 40404, `Subject '${s}' was soft deleted. Set permanent=true to delete permanently`),
  subjectNotSoftDeleted: (s: string) => new RegistryError(404, 40405, `Subject '${s}' was not deleted first before being permanently deleted`),
  versionSoftDeleted: (s: string, v: number) => new RegistryError(404, 40406, `Subject '${s}' Version ${v} was soft deleted. Set permanent=true to delete permanently`),
  versionNotSoftDeleted: (s: string, v: number) => new RegistryError(404, 40407, `Subject '${s}' Version ${v} was not deleted first before being permanently deleted`),
  subjectConfigNotFound: (s: string) => new RegistryError(404, 40408, `Subject '${s}' does not have subject-level compatibility configured`),
  incompatible: (messages: string[]) => new RegistryError(409, 409, `Schema being registered is incompatible with an earlier schema for subject; ${messages.join('; ')}`),
  invalidSchema: (message: string) => new RegistryError(422, 42201, message),
  invalidVersion: (v: string) => new RegistryError(422, 42202, `The specified version '${v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`),
  invalidCompatibility: (v: unknown) =>
    new RegistryError(422, 42203, `Invalid compatibility level '${String(v)}'. Valid values are BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE`),
  badRequest: (message: string) => new RegistryError(400, 400, message),
  store: (message: string) => new RegistryError(500, 50001, `Error in the backend datastore: ${message}`),
  timeout: (message: string) => new RegistryError(500, 50002, `Operation timed out: ${message}`),
}
