/**
 * process_final_params: the telephony.externalCall.finish fields when a conversation ends.
 *
 * Missed calls that rang less than 5 seconds (the caller changed their mind) are removed from the CRM
 * (`action: 'delete'`); other missed calls are announced in the employee's chat, answered ones are not.
 */
module.exports = function (input) {
  const p = input.params;
  const c = p.conversation;
  const rangMs = Date.parse(c.ended_at) - Date.parse(c.started_at);
  if (!c.was_answered && rangMs < 5000) {
    return { data: { STATUS_CODE: p.STATUS_CODE }, action: 'delete', state: 'success' };
  }
  return { data: { ADD_TO_CHAT: c.was_answered ? 0 : 1 }, action: 'register', state: 'success' };
};
