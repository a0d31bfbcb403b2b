/**
 * process_registration_params: the final telephony.externalCall.register fields, after the CRM search.
 *
 * The support line (74951234570) must not produce leads, and at night nobody watches the call card.
 * Returning the whole params (changed) is the safe habit: `data: {}` would cancel the registration.
 * (Fields left out keep their values; a field set to null is removed from the request.)
 */
module.exports = function (input) {
  const p = Object.assign({}, input.params);
  if (p.LINE_NUMBER === '74951234570') p.CRM_CREATE = 0;
  const hourInMoscow = (new Date(p.CALL_START_DATE).getUTCHours() + 3) % 24;
  if (hourInMoscow < 8 || hourInMoscow >= 21) p.SHOW = 0;
  return { data: p, state: 'success' };
};
