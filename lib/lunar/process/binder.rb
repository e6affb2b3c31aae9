# frozen_string_literal: true

require "lunar"
require "lunar/process/systemd"

module Lunar
  # Which listening sockets a server serves: its binds, with the sockets systemd passed
  # (socket activation, or this process before a hot restart re-executed it) standing in
  # for the binds at the same address. With no bind asked for, the passed sockets are
  # served as they are; a passed socket no bind names is served too (it was opened for us).
  # The launcher binds the rest itself (`listen!`), before any runtime or fork, so that the
  # sockets outlive a server (a hot restart keeps them) and every worker serves the very same ones.
  class Binder
    attr_reader :binds, :listen_fds

    # `binds`: the URIs the configuration names; `explicit`: whether the user named any
    # (else they are the default, replaced by systemd's sockets when there are some).
    def initialize(binds, explicit:, activated: Systemd.listen_fds)
      passed = activated.to_h { |fd| [Native.listen_address(fd), fd] }
      @binds = explicit || passed.empty? ? binds.dup : []
      @listen_fds = {}
      @binds.each do |bind|
        fd = passed.delete(address_of(bind))
        @listen_fds[bind] = fd if fd
      end
      passed.each do |address, fd|
        @binds << address
        @listen_fds[address] = fd
      end
    end

    # Binds every socket not passed down (cluster master, before forking). Returns self.
    def listen!
      @bound_here = @binds.reject { |bind| @listen_fds.key?(bind) }
      @bound_here.each { |bind| @listen_fds[bind] = Native.listen(bind) }
      self
    end

    # Removes the Unix socket files `listen!` created (the master's, when it exits; a
    # worker never removes what it did not bind).
    def remove_socket_files
      (@bound_here || []).each do |bind|
        path = bind.delete_prefix("unix://")
        File.delete(path) if bind.start_with?("unix://") && File.socket?(path)
      end
    end

    # What the server is told: the binds (TLS already in their URIs) and which descriptors serve which.
    def options
      { binds: @binds, listen_fds: @listen_fds, ssl: false }
    end

    # The addresses as a boot line shows them (real ports for port 0).
    def addresses
      @binds.map do |bind|
        address = Native.listen_address(@listen_fds.fetch(bind))
        bind.start_with?("ssl://") ? address.sub("tcp://", "ssl://") : address
      end
    end

    private

    # `tcp://host:port` (an ssl:// bind listens on a TCP socket too) or `unix:///path`.
    def address_of(bind)
      bind.sub(%r{\Assl://}, "tcp://").sub(/\?.*\z/, "")
    end
  end
end
