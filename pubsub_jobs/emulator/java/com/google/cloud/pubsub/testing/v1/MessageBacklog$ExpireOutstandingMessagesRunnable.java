/*
 * Replacement for MessageBacklog$ExpireOutstandingMessagesRunnable inside Google's Pub/Sub
 * emulator 0.8.20 (cloud-pubsub-emulator-0.8.20-all.jar, Cloud SDK 528), applied by
 * pubsub_jobs._emulator.
 *
 * Why: on a subscription with a retry policy, a message whose lease expires (or that is
 * nacked) on its 2nd or later delivery waits in MessageBacklog.delayedMessagesByTime, a map
 * from redelivery time (now plus whole seconds of backoff) to ack ids. insertDelayedMessage
 * skips an ack id only when a slot holds that ack id alone, and every pull inserts expired
 * ack ids again, so messages that expire together end up in several slots. The emulator's
 * task, run every second, nacks every ack id of every due slot: the second nack of an ack id
 * finds no DeliveryInfo and throws a NullPointerException. The task catches only
 * StatusException, and a Runnable of scheduleAtFixedRate that throws is cancelled for good:
 * no delayed message of that subscription is ever delivered again (nor dead-lettered), and
 * synchronous pulls return nothing.
 *
 * This class does what MessageBacklog.expireOutstandingMessages does (nack the ack ids of every
 * slot due by now, then drop the slot), holding the same lock (the backlog itself, which its
 * synchronized methods lock), but nacks only ack ids still in `delivered` (not acked, not
 * already nacked from an earlier slot), and never lets anything escape run(), so the task
 * keeps running. The backlog's private members are reached through reflection.
 *
 * It is compiled against a stub `class MessageBacklog {}` put before the jar on javac's
 * class path (javac 17 crashes when the real MessageBacklog.class declares this class as its
 * member), and the compiled class alone is put BEFORE the jar on the emulator's class path, so
 * the JVM loads it instead of the bundled one. Same class loader, same package. The
 * constructor keeps the bundled one's signature, which MessageBacklog's constructor calls.
 */
package com.google.cloud.pubsub.testing.v1;

import java.lang.reflect.Field;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedMap;
import java.util.logging.Level;
import java.util.logging.Logger;

class MessageBacklog$ExpireOutstandingMessagesRunnable implements Runnable {
  private static final Logger LOG = Logger.getLogger("pubsub_jobs.emulator_fix");
  private static final long LOG_INTERVAL_MILLIS = 60_000L;

  final MessageBacklog this$0;

  private Field delayedField;
  private Field deliveredField;
  private Field clockField;
  private Method nackMethod;
  private long lastLogMillis;

  MessageBacklog$ExpireOutstandingMessagesRunnable(MessageBacklog backlog) {
    this.this$0 = backlog;
  }

  /** Redeliver the delayed messages that are due; never throws (see the file comment). */
  @Override
  public void run() {
    try {
      redeliverDueMessages();
    } catch (Throwable t) {
      log("redelivering delayed messages failed; will try again in a second", t);
    }
  }

  @SuppressWarnings("unchecked")
  private void redeliverDueMessages() throws ReflectiveOperationException {
    resolveMembers();
    synchronized (this$0) { // the lock of MessageBacklog's synchronized methods
      SortedMap<Long, Set<String>> delayed =
          (SortedMap<Long, Set<String>>) delayedField.get(this$0);
      if (delayed.isEmpty()) {
        return;
      }
      Map<String, ?> delivered = (Map<String, ?>) deliveredField.get(this$0);
      long now = ((Clock) clockField.get(this$0)).currentTimeMillis();
      Iterator<Map.Entry<Long, Set<String>>> slots = delayed.entrySet().iterator();
      while (slots.hasNext()) {
        Map.Entry<Long, Set<String>> slot = slots.next();
        if (slot.getKey() > now) {
          break; // sorted by time: the rest are not due yet
        }
        List<String> ackIds = new ArrayList<String>(slot.getValue());
        slots.remove();
        for (String ackId : ackIds) {
          if (!delivered.containsKey(ackId)) {
            continue; // acked, or already nacked from an earlier slot (the double entry)
          }
          try {
            nackMethod.invoke(this$0, ackId);
          } catch (InvocationTargetException e) {
            log("redelivering ack id " + ackId + " failed", e.getCause());
          } catch (RuntimeException | IllegalAccessException e) {
            log("redelivering ack id " + ackId + " failed", e);
          }
        }
      }
    }
  }

  private void resolveMembers() throws ReflectiveOperationException {
    if (nackMethod != null) {
      return;
    }
    delayedField = accessible(MessageBacklog.class.getDeclaredField("delayedMessagesByTime"));
    deliveredField = accessible(MessageBacklog.class.getDeclaredField("delivered"));
    clockField = accessible(MessageBacklog.class.getDeclaredField("clock"));
    Method nack = MessageBacklog.class.getDeclaredMethod("nackMessage", String.class);
    nack.setAccessible(true);
    nackMethod = nack;
  }

  private static Field accessible(Field field) {
    field.setAccessible(true);
    return field;
  }

  /** Log a failure, at most once a minute per subscription (the task runs every second). */
  private void log(String message, Throwable cause) {
    try {
      long now = System.currentTimeMillis();
      if (lastLogMillis != 0 && now - lastLogMillis < LOG_INTERVAL_MILLIS) {
        return;
      }
      lastLogMillis = now;
      LOG.log(Level.WARNING, "pubsub-jobs emulator fix: " + message, cause);
    } catch (Throwable ignored) {
      // Logging must not cancel the task either.
    }
  }
}
