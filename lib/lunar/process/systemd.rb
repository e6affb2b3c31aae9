# frozen_string_literal: true

require "socket"

module Lunar
  # What systemd offers a service, in plain Ruby (no libsystemd):
  # - socket activation: `LISTEN_PID` names this process and `LISTEN_FDS` counts the
  #   listening sockets it passed, from descriptor 3 on;
  # - readiness: `sd_notify` datagrams (`READY=1`, `STOPPING=1`, `RELOADING=1`) to the Unix
  #   socket named by `NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace).
  module Systemd
    FIRST_FD = 3

    module_function

    # The descriptors systemd passed to this process (empty when it passed none, or passed
    # them to another process). The variables are then removed, so that nothing started
    # later, a forked worker included, takes the sockets for its own.
    def listen_fds(env = ENV)
      pid = env["LISTEN_PID"]
      count = env["LISTEN_FDS"]
      return [] unless pid && count && Integer(pid, exception: false) == Process.pid

      %w[LISTEN_PID LISTEN_FDS LISTEN_FDNAMES].each { |name| env.delete(name) }
      Array.new(Integer(count, exception: false) || 0) { |i| FIRST_FD + i }
    end

    # Sends `state` to systemd's notify socket when there is one; returns whether it did.
    # Never raises: a service manager that went away must not stop the server.
    def notify(state, env = ENV)
      path = env["NOTIFY_SOCKET"]
      return false if path.nil? || path.empty?

      path = "\0#{path[1..]}" if path.start_with?("@")
      Socket.open(:UNIX, :DGRAM) { |s| s.send(state, 0, Socket.sockaddr_un(path)) }
      true
    rescue SystemCallError, ArgumentError
      false
    end
  end
end
