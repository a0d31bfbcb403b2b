import { afterEach, describe, expect, test } from '@jest/globals';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CLIENT, startCrm, type CrmRig } from './helpers.ts';

let rig: CrmRig | undefined;
let server: http.Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  if (server) await new Promise((r) => server!.close(r));
  server = undefined;
  await rig?.close();
  rig = undefined;
});

/** The handler mounted on a real HTTP server, as HttpServer.route would. */
async function serve(handler: CrmRig['crm']['responsibleHandler']): Promise<string> {
  server = http.createServer((req, res) => { void handler(req, res, new URL(req.url ?? '/', 'http://daemon')); });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/responsible`;
}

async function get(url: string): Promise<{ status: number; type: string | null; body: string; ms: number }> {
  const started = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), body, ms: performance.now() - started };
}

describe('GET /responsible?phone=…', () => {
  test('the extension of the responsible of the number\'s entity, as text/plain; empty for an unknown number; cached', async () => {
    rig = await startCrm();
    const url = await serve(rig.crm.responsibleHandler);
    expect(await get(`${url}?phone=${encodeURIComponent(CLIENT)}`)).toMatchObject({ status: 200, type: 'text/plain; charset=utf-8', body: '102' });
    expect(await get(`${url}?phone=%2B79031112233`)).toMatchObject({ status: 200, body: '' });
    expect(await get(`${url}?phone=${encodeURIComponent(CLIENT)}`)).toMatchObject({ body: '102' });
    expect(rig.sent('telephony.externalCall.searchCrmEntities')).toHaveLength(2);
    expect(await get(url)).toMatchObject({ status: 400, body: '' });

    rig.clock.now += 61_000; // past cache_ms: asked again
    expect(await get(`${url}?phone=${encodeURIComponent(CLIENT)}`)).toMatchObject({ body: '102' });
    expect(rig.sent('telephony.externalCall.searchCrmEntities')).toHaveLength(3);
  });

  test('Bitrix24 hangs: an empty answer within timeout_ms, never late', async () => {
    rig = await startCrm({ crmYaml: 'crm: { responsible_endpoint: { timeout_ms: 300 } }', timeoutMs: 5000 });
    const url = await serve(rig.crm.responsibleHandler);
    rig.emu.failNext(1, 'hang', 'telephony.externalCall.searchCrmEntities');
    const slow = await get(`${url}?phone=${encodeURIComponent(CLIENT)}`);
    expect(slow).toMatchObject({ status: 200, body: '' });
    expect(slow.ms).toBeGreaterThanOrEqual(290);
    expect(slow.ms).toBeLessThan(1000);
    // Bitrix24 answers again: the next request gets the extension.
    expect(await get(`${url}?phone=89161234567`)).toMatchObject({ body: '102' });
  });

  test('Bitrix24 errors: an empty answer at once, logged', async () => {
    rig = await startCrm();
    const url = await serve(rig.crm.responsibleHandler);
    rig.emu.failNext(1, '500', 'telephony.externalCall.searchCrmEntities');
    expect(await get(`${url}?phone=${encodeURIComponent(CLIENT)}`)).toMatchObject({ status: 200, body: '' });
    expect(rig.lines.some((l) => l.includes(`responsible lookup for ${CLIENT} failed`))).toBe(true);
  });
});
