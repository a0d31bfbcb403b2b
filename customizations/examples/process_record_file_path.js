/**
 * process_record_file_path: where the daemon finds the recording of a call.
 *
 * Asterisk writes to /var/spool/asterisk/monitor/YYYY/MM/DD/<uniqueid>.wav on the PBX; the daemon runs on another
 * host that mounts that directory read-only at /mnt/asterisk-records.
 */
module.exports = function (input) {
  const path = input.params.path.replace(/^\/var\/spool\/asterisk\/monitor\//, '/mnt/asterisk-records/');
  return { data: { path: path }, state: 'success' };
};
