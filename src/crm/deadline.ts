/**
 * Task deadlines from configuration, in the PBX's time zone: `+30m`, `+2h`, `+1d` (from the missed call), or
 * `today HH:MM` / `tomorrow HH:MM` (wall-clock time in that zone; `today` already past means tomorrow).
 */
import { isoWithOffset } from '../integration/iso-time.ts';

const UNIT_MS: Readonly<Record<string, number>> = { m: 60_000, h: 3_600_000, d: 86_400_000 };

/** The deadline as ISO 8601 with the zone's offset (what tasks.task.add's DEADLINE takes). */
export function deadlineIso(spec: string, fromMs: number, timeZone: string): string {
  const relative = /^\+(\d+)([mhd])$/.exec(spec);
  if (relative) return isoWithOffset(fromMs + Number(relative[1]) * (UNIT_MS[relative[2] as string] ?? 0), timeZone);
  const wall = /^(today|tomorrow) (\d{1,2}):(\d{2})$/.exec(spec);
  if (!wall) throw new Error(`deadline "${spec}" is not +<n>m|h|d, "today HH:MM" or "tomorrow HH:MM"`);
  const [y, m, d] = isoWithOffset(fromMs, timeZone).slice(0, 10).split('-').map(Number) as [number, number, number];
  const hh = Number(wall[2]);
  const mm = Number(wall[3]);
  let at = zonedEpoch(y, m, d + (wall[1] === 'tomorrow' ? 1 : 0), hh, mm, timeZone);
  if (wall[1] === 'today' && at <= fromMs) at = zonedEpoch(y, m, d + 1, hh, mm, timeZone);
  return isoWithOffset(at, timeZone);
}

/** Epoch ms of a wall-clock time in a zone (Date.UTC normalises day overflow, e.g. the 32nd). */
function zonedEpoch(y: number, m: number, d: number, hh: number, mm: number, timeZone: string): number {
  const wallAsUtc = Date.UTC(y, m - 1, d, hh, mm);
  let at = wallAsUtc;
  // Twice: the offset at the first guess may differ from the offset at the answer around a DST change.
  for (let i = 0; i < 2; i++) at = wallAsUtc - offsetMs(at, timeZone);
  return at;
}

function offsetMs(at: number, timeZone: string): number {
  const m = /([+-])(\d{2}):(\d{2})$/.exec(isoWithOffset(at, timeZone));
  if (!m) return 0;
  return (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * 60_000;
}
