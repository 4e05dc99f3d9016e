/*
 * Replacement for io.grpc.InternalStatus inside Google's Pub/Sub emulator 0.8.20
 * (cloud-pubsub-emulator-0.8.20-all.jar, Cloud SDK 528), applied by pubsub_jobs._emulator.
 *
 * Why: the emulator's bundled grpc-core calls
 * InternalStatus.asRuntimeException(Status, Metadata, boolean) when a client cancels a
 * stream (ServerImpl$JumpToApplicationThreadServerStreamListener.closed and
 * ServerCallImpl$ServerStreamListenerImpl.closedInternal), but its bundled grpc-api lacks
 * that overload. The NoSuchMethodError (logged from onRstStreamRead) leaves the cancelled
 * streaming-pull stream registered, and the messages handed to it are never redelivered.
 *
 * This class keeps every member of the bundled one (MESSAGE_KEY, CODE_KEY,
 * asRuntimeExceptionWithoutStacktrace) and adds the missing overload. It is compiled with
 * `javac -cp <the emulator jar>` and placed BEFORE the jar on the class path, so the JVM
 * loads it instead of the bundled copy. Same class loader, same package: it may use the
 * package-private Status.MESSAGE_KEY / CODE_KEY and InternalStatusRuntimeException.
 */
package io.grpc;

import javax.annotation.Nullable;

/** Accesses internal data. Do not use this. */
@Internal
public final class InternalStatus {
  private InternalStatus() {}

  /** Key to bind status message to trailers. */
  @Internal
  public static final Metadata.Key<String> MESSAGE_KEY = Status.MESSAGE_KEY;

  /** Key to bind status code to trailers. */
  @Internal
  public static final Metadata.Key<Status> CODE_KEY = Status.CODE_KEY;

  /**
   * Create a new {@link StatusRuntimeException} with the internal option of skipping the
   * filling of the stack trace (as in the bundled grpc-api).
   */
  @Internal
  public static StatusRuntimeException asRuntimeExceptionWithoutStacktrace(
      Status status, @Nullable Metadata trailers) {
    return new InternalStatusRuntimeException(status, trailers);
  }

  /**
   * The overload newer grpc-core expects (grpc-api >= 1.59). Upstream it calls a
   * three-argument StatusRuntimeException constructor the bundled grpc-api does not have;
   * InternalStatusRuntimeException (a StatusRuntimeException whose fillInStackTrace does
   * nothing) gives the same result when no stack trace is wanted.
   */
  @Internal
  public static StatusRuntimeException asRuntimeException(
      Status status, @Nullable Metadata trailers, boolean withStackTrace) {
    if (withStackTrace) {
      return new StatusRuntimeException(status, trailers);
    }
    return new InternalStatusRuntimeException(status, trailers);
  }
}
