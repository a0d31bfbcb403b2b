/**
 * get_updated_activity_fields: fields to update on the call's CRM activity when a conversation ends.
 *
 * A subject that says who talked to whom and for how long, and high priority for missed calls.
 */
module.exports = function (input) {
  const c = input.params;
  const seconds = c.was_answered ? Math.round((Date.parse(c.ended_at) - Date.parse(c.answered_at)) / 1000) : 0;
  const what = c.type_code === 'incoming' ? 'Входящий' : c.type_code === 'outgoing' ? 'Исходящий' : 'Внутренний';
  return {
    data: {
      SUBJECT: what + ' ' + c.from + ' → ' + c.to + (c.was_answered ? ', ' + seconds + ' с' : ', пропущен'),
      PRIORITY: c.was_answered ? 2 : 3,
    },
    state: 'success',
  };
};
