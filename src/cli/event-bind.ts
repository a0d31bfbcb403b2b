/**
 * `event-bind --config FILE [--offline]`: binds the daemon's handlers for ONEXTERNALCALLSTART (click-to-call) and
 * ONEXTERNALCALLBACKSTART (website callback form) on the portal, online (Bitrix24 posts to events.handler_url) or
 * offline (Bitrix24 queues them for event.offline.get), and prints what is bound. Already-bound events are left
 * alone, so it can be run again safely. Bitrix24 allows event.bind only in an application context (local app).
 */
import type { BitrixClient } from '../bitrix/client.ts';
import { loadConfig } from '../config/load.ts';
import { eventHandlerUrl, openBitrix } from './bitrix-from-config.ts';

export const CALL_EVENTS = ['ONEXTERNALCALLSTART', 'ONEXTERNALCALLBACKSTART'] as const;

export interface BoundEvent {
  event: string;
  handler: string;
  offline: boolean;
}

export async function boundEvents(client: BitrixClient): Promise<BoundEvent[]> {
  const res = await client.call<Array<{ event?: string; handler?: string; event_type?: string; offline?: number | string }>>('event.get');
  return (Array.isArray(res.result) ? res.result : []).map((e) => ({
    event: String(e.event ?? '').toUpperCase(),
    handler: String(e.handler ?? ''),
    offline: e.event_type === 'offline' || String(e.offline ?? '0') === '1',
  }));
}

export async function eventBindCommand(configPath: string, offline: boolean, out: NodeJS.WritableStream): Promise<number> {
  const config = loadConfig(configPath);
  const handler = eventHandlerUrl(config);
  const { client, close } = openBitrix(config);
  try {
    const bound = await boundEvents(client);
    for (const event of CALL_EVENTS) {
      if (bound.some((b) => b.event === event && b.offline === offline && (offline || b.handler === handler))) {
        out.write(`= ${event} already bound${offline ? ' (offline)' : ` → ${handler}`}\n`);
        continue;
      }
      await client.call('event.bind', { event, handler, ...(offline ? { event_type: 'offline' } : {}) });
      out.write(`+ ${event} bound${offline ? ' (offline)' : ` → ${handler}`}\n`);
    }
    if (!offline && !config.events.handlerUrl) {
      out.write(`note: events.handler_url is not set; bound to ${handler}, which Bitrix24 must be able to reach\n`);
    }
    if (offline && config.events.mode !== 'offline') out.write('note: set events.mode: offline so that the daemon polls them\n');
    return 0;
  } finally {
    close();
  }
}
