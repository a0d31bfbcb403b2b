/**
 * process_entity_creation_params: the fields of the lead (contact, deal) created for an unknown number.
 *
 * A readable title with the number in the Russian format, the phone typed as mobile when it is one,
 * and a note that the daemon made it.
 */
module.exports = function (input) {
  const p = input.params;
  const number = p.PHONE && p.PHONE[0] ? p.PHONE[0].VALUE : '';
  const d = number.replace(/\D/g, '');
  const pretty = d.length === 11 ? '+7 ' + d.slice(1, 4) + ' ' + d.slice(4, 7) + '-' + d.slice(7, 9) + '-' + d.slice(9) : number;
  const mobile = /^[78]9/.test(d);
  return {
    data: {
      TITLE: 'Звонок с ' + pretty,
      PHONE: [{ VALUE: number, VALUE_TYPE: mobile ? 'MOBILE' : 'WORK' }],
      COMMENTS: 'Создан автоматически по входящему звонку',
    },
    state: 'success',
  };
};
