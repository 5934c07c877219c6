import { ApiError } from './api';

/**
 * One request's state for a page: loading, the data, or the error, with reload. Reloads keep the
 * previous data on screen (auto-refresh does not flash a spinner).
 */
export class Resource<T> {
  data = $state<T | undefined>(undefined);
  error = $state<ApiError | Error | undefined>(undefined);
  loading = $state(true);
  #fn: () => Promise<T>;
  #seq = 0;

  constructor(fn: () => Promise<T>, start = true) {
    this.#fn = fn;
    if (start) void this.reload();
  }

  async reload(fn?: () => Promise<T>): Promise<void> {
    if (fn) this.#fn = fn;
    const seq = ++this.#seq;
    this.loading = true;
    try {
      const data = await this.#fn();
      if (seq !== this.#seq) return;
      this.data = data;
      this.error = undefined;
    } catch (error) {
      if (seq !== this.#seq) return;
      this.error = error as Error;
    } finally {
      if (seq === this.#seq) this.loading = false;
    }
  }
}

/** A 404 from a route that does not exist in this Pylee (an older server): shown as "not available". */
export const missingRoute = (error: unknown) => error instanceof ApiError && error.code === 'route-not-found';
