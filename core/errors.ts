/**
 * Errors that cross a boundary carry a stable machine-readable `code` and a sentence a person can
 * act on. HTTP layers render them as RFC 9457 problem details; the CLI prints `detail`.
 */
export class AppError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly extra: Record<string, unknown>;

  constructor(
    status: number,
    code: string,
    title: string,
    detail: string,
    extra: Record<string, unknown> = {},
  ) {
    super(detail);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.title = title;
    this.extra = extra;
  }
}

export class BadRequestError extends AppError {
  constructor(detail: string, code = 'bad-request', extra?: Record<string, unknown>) {
    super(400, code, 'Bad request', detail, extra);
  }
}

export class UnauthorizedError extends AppError {
  constructor(detail: string, code = 'unauthorized') {
    super(401, code, 'Unauthorized', detail);
  }
}

export class ForbiddenError extends AppError {
  constructor(detail: string, code = 'forbidden') {
    super(403, code, 'Forbidden', detail);
  }
}

export class NotFoundError extends AppError {
  constructor(detail: string, code = 'not-found') {
    super(404, code, 'Not found', detail);
  }
}

export class ConflictError extends AppError {
  constructor(detail: string, code = 'conflict', extra?: Record<string, unknown>) {
    super(409, code, 'Conflict', detail, extra);
  }
}

/** A `PYLEE_*` variable (or CLI flag) has a value Pylee cannot use; start-up stops. */
export class ConfigError extends Error {
  readonly variable: string;
  constructor(variable: string, why: string) {
    super(`${variable}: ${why}`);
    this.name = 'ConfigError';
    this.variable = variable;
  }
}

/** A store or tool Pylee needs at start is missing or unusable; the message says how to fix it. */
export class StartupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StartupError';
  }
}
