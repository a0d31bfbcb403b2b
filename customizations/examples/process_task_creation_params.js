/**
 * process_task_creation_params: the task created for a missed call (tasks.task.add fields in arNewTaskData).
 *
 * Call back tomorrow by 10:00 Moscow time (UTC+3 all year), and say so in the title.
 */
function tomorrowTenMoscow(now) {
  const moscow = new Date(now.getTime() + 3 * 3600 * 1000);
  const next = new Date(Date.UTC(moscow.getUTCFullYear(), moscow.getUTCMonth(), moscow.getUTCDate() + 1));
  const pad = function (n) { return String(n).padStart(2, '0'); };
  return next.getUTCFullYear() + '-' + pad(next.getUTCMonth() + 1) + '-' + pad(next.getUTCDate()) + 'T10:00:00+03:00';
}

module.exports = function (input) {
  const task = input.params.arNewTaskData;
  return {
    data: {
      arNewTaskData: {
        DEADLINE: tomorrowTenMoscow(new Date()),
        TITLE: task.TITLE + ' — перезвонить до 10:00',
        PRIORITY: 2,
      },
    },
    state: 'success',
  };
};
