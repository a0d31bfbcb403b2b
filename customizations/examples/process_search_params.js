/**
 * process_search_params: the register request before the CRM search (telephony.externalCall.register fields).
 *
 * - The source of a new lead depends on the number the client called (one DID per advertising channel).
 * - Short service numbers (900, 0611...) are not clients: the call is not registered (`action: 'ignore'`).
 * - For the sales line, look for contacts and companies of the sales department only (`filter`).
 * Return the params (changed): returning `data: {}` would cancel the registration.
 */
const SOURCE_BY_LINE = {
  '74951234567': 'CALL',
  '74951234568': 'ADVERTISING',
  '74951234569': 'WEB',
};

module.exports = function (input) {
  const p = input.params;
  const answer = { data: Object.assign({}, p), state: 'success' };
  delete answer.data.conversation;
  delete answer.data.call;
  delete answer.data.user;
  if (SOURCE_BY_LINE[p.LINE_NUMBER]) answer.data.CRM_SOURCE = SOURCE_BY_LINE[p.LINE_NUMBER];
  if (String(p.PHONE_NUMBER).replace(/\D/g, '').length < 7) answer.action = 'ignore';
  if (p.LINE_NUMBER === '74951234569') {
    answer.filter = { contact: { UF_CRM_DEPARTMENT: 'sales' }, company: { UF_CRM_DEPARTMENT: 'sales' } };
  }
  return answer;
};
