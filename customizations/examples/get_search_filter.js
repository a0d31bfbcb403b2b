/**
 * get_search_filter: which of the CRM entities found by the number the call is linked to.
 *
 * Keep only contacts when there are any, so a call is never attached to an old lead of a known client.
 */
module.exports = function (input) {
  const entities = input.params.entities;
  const contacts = entities.filter(function (e) { return e.CRM_ENTITY_TYPE === 'CONTACT'; });
  return { data: { entities: contacts.length > 0 ? contacts : entities }, state: 'success' };
};
