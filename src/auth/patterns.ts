import { KometaError } from '../core/errors.js';

/**
 * Channel patterns, used in token claims and in the public-access settings.
 *
 * A pattern is a channel name in which `*` stands for one or more characters
 * other than `.`, and `**` for one or more characters of any kind:
 *   `room.*`  matches `room.42`, not `room.42.x` and not `room.`
 *   `room.**` matches `room.42` and `room.42.x`
 *   `*`       matches every channel without a dot; `**` every channel
 * Without `*` a pattern matches exactly that channel.
 */
const PATTERN = /^[A-Za-z0-9_.:@*-]{1,128}$/;

export type ChannelMatcher = (channel: string) => boolean;

export function compilePattern(pattern: string): ChannelMatcher {
  if (!PATTERN.test(pattern) || pattern.includes('***')) {
    throw new KometaError('KOMETA_ERR_PATTERN', `Invalid channel pattern ${JSON.stringify(pattern.slice(0, 140))}`);
  }
  if (!pattern.includes('*')) return (channel) => channel === pattern;
  if (pattern === '**') return () => true;
  let source = '^';
  for (const part of pattern.split(/(\*\*|\*)/)) {
    if (part === '**') source += '.+';
    else if (part === '*') source += '[^.]+';
    else source += part.replace(/[.]/g, '\\.');
  }
  const regex = new RegExp(`${source}$`);
  return (channel) => regex.test(channel);
}

/** Matches when any of the patterns does; an empty list matches nothing. */
export function compilePatterns(patterns: readonly string[]): ChannelMatcher {
  const matchers = patterns.map(compilePattern);
  if (matchers.length === 0) return () => false;
  if (matchers.length === 1) return matchers[0]!;
  return (channel) => matchers.some((match) => match(channel));
}
