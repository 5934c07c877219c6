/**
 * Severity of an advisory: the base score of its CVSS vector (v4 preferred, then v3; computed by
 * ae-cvss-calculator, never trusted from a number in the record), else the database's own label
 * (`database_specific.severity`, as GitHub writes it), else unknown.
 */
import cvss from 'ae-cvss-calculator';
import type { OsvRecord, OsvSeverity } from './osv.ts';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type SeverityLevel = (typeof SEVERITIES)[number] | 'unknown';

export interface Severity {
  level: SeverityLevel;
  score: number | null;
  vector: string | null;
}

/** CVSS v3/v4 qualitative rating of a base score. */
export function levelOf(score: number): SeverityLevel {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  return 'low';
}

const LABELS: Record<string, SeverityLevel> = {
  LOW: 'low',
  MODERATE: 'medium',
  MEDIUM: 'medium',
  HIGH: 'high',
  CRITICAL: 'critical',
};

function scoreOf(entry: OsvSeverity): number | undefined {
  try {
    const scores = cvss.fromVector(entry.score)?.calculateScores() as
      { base?: number; baseMetricsOnly?: number } | undefined;
    // v4's `base` folds in threat metrics (E:P lowers it); the base score (CVSS-B) is baseMetricsOnly.
    const base = scores?.baseMetricsOnly ?? scores?.base;
    return typeof base === 'number' && Number.isFinite(base) ? base : undefined;
  } catch {
    return undefined; // a vector the calculator cannot read: fall through to the next source
  }
}

/** The severity Pylee reports for `record`. */
export function severityOf(record: OsvRecord): Severity {
  const entries = [...(record.severity ?? []), ...(record.affected ?? []).flatMap((a) => a.severity ?? [])];
  for (const type of ['CVSS_V4', 'CVSS_V3']) {
    for (const entry of entries.filter((e) => e.type === type)) {
      const score = scoreOf(entry);
      if (score !== undefined) return { level: levelOf(score), score, vector: entry.score };
    }
  }
  const label = record.database_specific?.severity;
  const level = typeof label === 'string' ? LABELS[label.toUpperCase()] : undefined;
  return { level: level ?? 'unknown', score: null, vector: null };
}

/** Levels at or above `threshold`, for filters and gates. */
export function atOrAbove(level: SeverityLevel, threshold: (typeof SEVERITIES)[number]): boolean {
  if (level === 'unknown') return false;
  return SEVERITIES.indexOf(level) >= SEVERITIES.indexOf(threshold);
}
