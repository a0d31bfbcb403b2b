import { afterEach, describe, expect, test } from '@jest/globals';
import { parseConfig } from '../../src/config/load.ts';
import { CLIENT, DID, startCrm, type CrmRig } from './helpers.ts';

let rig: CrmRig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe('registration filter (crm.registration_filter)', () => {
  test('black lists: a trunk, an extension, a number pattern; the rest is allowed', async () => {
    rig = await startCrm({ crmYaml: `crm:
  registration_filter:
    deny: { trunks: [fax-trunk], extensions: ["199"], numbers: ['^\\+7800'] }` });
    const base = { direction: 'incoming' as const, extension: '101', trunk: 'provider', did: DID, number: CLIENT };
    expect(rig.crm.registrationAllowed(base)).toEqual({ allowed: true, reason: 'no rule refuses it' });
    expect(rig.crm.registrationAllowed({ ...base, trunk: 'fax-trunk' })).toEqual({ allowed: false, reason: 'deny.trunks: fax-trunk' });
    expect(rig.crm.registrationAllowed({ ...base, extension: '199' })).toEqual({ allowed: false, reason: 'deny.extensions: 199' });
    expect(rig.crm.registrationAllowed({ ...base, number: '+78001234567' })).toEqual({ allowed: false, reason: 'deny.numbers: +78001234567' });
  });

  test('white lists: only listed DIDs and extensions; a value not known yet is not held against the call', async () => {
    rig = await startCrm({ crmYaml: `crm:
  registration_filter:
    allow: { dids: ["${DID}"], extensions: ["101", "102"] }` });
    expect(rig.crm.registrationAllowed({ direction: 'incoming', extension: '102', did: DID, number: CLIENT }).allowed).toBe(true);
    expect(rig.crm.registrationAllowed({ direction: 'incoming', extension: '102', did: '74950000000', number: CLIENT }))
      .toEqual({ allowed: false, reason: 'allow.dids: 74950000000 not listed' });
    expect(rig.crm.registrationAllowed({ direction: 'outgoing', extension: '103', trunk: 'provider', number: CLIENT }))
      .toEqual({ allowed: false, reason: 'allow.extensions: 103 not listed' });
    expect(rig.crm.registrationAllowed({ direction: 'outgoing', extension: '101', trunk: 'provider', number: CLIENT }).allowed).toBe(true);
  });

  test('deny wins over allow', async () => {
    rig = await startCrm({ crmYaml: `crm: { registration_filter: { allow: { trunks: [provider] }, deny: { numbers: ['4567$'] } } }` });
    expect(rig.crm.registrationAllowed({ direction: 'incoming', trunk: 'provider', number: CLIENT })).toEqual({ allowed: false, reason: `deny.numbers: ${CLIENT}` });
  });

  test('a number pattern that does not compile is a config error naming the key', () => {
    expect(() => parseConfig(`ami: { username: a, secret: s3cret-x }
bitrix24: { webhook_url: https://example.bitrix24.ru/rest/1/abc, default_user_id: 1 }
crm:
  registration_filter:
    deny: { numbers: ['(unclosed'] }
  missed_calls: { owner: [entity_responsible, "fixed:x"] }`, 'config.yaml', { env: {} })).toThrow(
      /config\.yaml:5: crm\.registration_filter\.deny\.numbers\[0\]: is not a valid regular expression[\s\S]*config\.yaml:6: crm\.missed_calls\.owner\[1\]: must match pattern/);
  });
});
