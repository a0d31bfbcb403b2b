/**
 * Telling the owner of a missed-call task: a Bitrix24 system notification (im.notify.system.add, scope `im`;
 * chats/notifications/im-notify-system-add.md) and optionally a Telegram bot message (Bot API sendMessage).
 * Both are best effort: a failure is one warning line, never a reason to retry the call's CRM work (the task,
 * which is what matters, already exists).
 */
import type { RestCaller } from '../bitrix/telephony.ts';
import type { CrmConfig } from '../config/schema.ts';
import type { Logger } from '../log/logger.ts';

export const IM_NOTIFY_METHOD = 'im.notify.system.add';
const TELEGRAM_TIMEOUT_MS = 5000;

export async function notifyInBitrix(client: RestCaller, log: Logger, userId: number, message: string, callId: string): Promise<boolean> {
  try {
    await client.call(IM_NOTIFY_METHOD, { USER_ID: userId, MESSAGE: message });
    return true;
  } catch (err) {
    log.warn(`could not notify user ${userId} in Bitrix24 (${IM_NOTIFY_METHOD}): ${(err as Error).message}`, { callId });
    return false;
  }
}

type TelegramConfig = NonNullable<CrmConfig['missedCalls']['telegram']>;

/** The chats a message for this Bitrix24 user goes to: the user's own chat and the shared one, if configured. */
export function telegramChats(config: TelegramConfig, userId: number): string[] {
  const chats = config.users.filter((u) => u.userId === userId).map((u) => u.chatId);
  if (config.chatId !== undefined) chats.push(config.chatId);
  return [...new Set(chats)];
}

export async function notifyInTelegram(config: TelegramConfig, log: Logger, userId: number, text: string, callId: string): Promise<number> {
  let sent = 0;
  for (const chatId of telegramChats(config, userId)) {
    try {
      const res = await fetch(`${config.apiUrl}/bot${config.botToken}/sendMessage`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ chat_id: chatId, text }),
        signal: AbortSignal.timeout(TELEGRAM_TIMEOUT_MS),
      });
      const body = (await res.json().catch(() => ({}))) as { ok?: boolean; description?: string };
      if (!res.ok || body.ok !== true) throw new Error(`HTTP ${res.status}${body.description ? `: ${body.description}` : ''}`);
      sent++;
    } catch (err) {
      // The URL holds the bot token: only the reason is logged.
      log.warn(`could not send the Telegram message to chat ${chatId}: ${(err as Error).message}`, { callId });
    }
  }
  return sent;
}
