/**
 * get_updated_entity_fields (old name: get_updated_lead_fields): fields to update on the call's CRM entity
 * when the call ends. Only leads the daemon created for this call are touched; for others `data: {}` means
 * "nothing to update".
 */
module.exports = function (input) {
  const p = input.params;
  if (!p.entity_data || !p.entity_data.was_created || p.entity_data.entity_type !== 'lead') return { data: {}, state: 'success' };
  const talked = Object.keys(p.conversations).some(function (id) { return p.conversations[id].was_answered; });
  return {
    data: {
      SOURCE_DESCRIPTION: 'Звонок на ' + p.trunk,
      STATUS_ID: talked ? 'IN_PROCESS' : 'NEW',
    },
    state: 'success',
  };
};
