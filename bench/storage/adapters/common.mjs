// Shared by the adapters: history limits that keep the whole dataset, so every engine holds the same messages.
export const KEEP_ALL = { maxMessages: 1_000_000_000, maxBytes: 2 ** 40, maxAgeMs: 1e12 };
