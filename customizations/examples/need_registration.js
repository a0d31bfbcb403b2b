/**
 * need_registration: should this call (or conversation) be registered in Bitrix24 at all?
 * Asked at every call stage; the answer of the first stage (conversation_requested) is what usually matters.
 *
 * Black list by trunk and extension: the fax line and the door phone are not CRM calls, and neither are
 * calls between colleagues. Known spam numbers are dropped too.
 */
const SKIP_TRUNKS = ['fax-provider', 'doorphone'];
const SKIP_EXTENSIONS = ['199', '200'];
const SPAM = ['+74950000000', '+78005553535'];

module.exports = function (input) {
  const p = input.params;
  let need = true;
  if (p.direction === 'internal') need = false;
  if (SKIP_TRUNKS.indexOf(p.trunk) >= 0) need = false;
  if (SKIP_EXTENSIONS.indexOf(p.extension) >= 0) need = false;
  if (SPAM.indexOf(p.external_number) >= 0) need = false;
  if (!need) console.log('not registered:', p.direction, p.trunk, p.extension, p.external_number);
  return { data: { need_registration: need }, state: 'success' };
};
