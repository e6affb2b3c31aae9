# frozen_string_literal: true

require "json"
require "lunar/process/line_reader"

module Lunar
  # A worker as the cluster master sees it: its process, its slot (index) and phase, and
  # what it last reported over its pipe. A worker writes one line per message:
  #
  #   booted MAX_CONNECTIONS MODE…   once serving
  #   status {JSON}                  every worker_check_interval (the stats its server keeps)
  #
  # The master reads them without blocking; a worker silent for longer than
  # `worker_timeout` (booted) or `worker_boot_timeout` (booting) is stuck.
  class WorkerHandle
    attr_reader :index, :pid, :phase, :started_at, :last_checkin, :last_status, :pipe, :max_connections, :mode
    # Being stopped (its slot is free for a new one), and when to KILL it if it has not gone.
    attr_accessor :retiring, :kill_at

    def initialize(index:, pid:, phase:, pipe:)
      @index = index
      @pid = pid
      @phase = phase
      @pipe = pipe
      @started_at = Time.now.utc
      @checked_in = clock
      @last_checkin = @started_at
      @last_status = {}
      @booted = false
      @retiring = false
      @lines = LineReader.new(pipe)
    end

    def booted? = @booted

    # Reads what the worker wrote; true when it just booted.
    def read
      just_booted = false
      open = @lines.each_line { |line| just_booted |= message(line) }
      close_pipe unless open
      just_booted
    end

    # Seconds since the worker last said anything.
    def silent_for = clock - @checked_in

    def close_pipe
      @pipe.close unless @pipe.closed?
      true
    end

    def open? = !@pipe.closed?

    # Puma's per-worker stats entry.
    def status
      { started_at: @started_at.strftime("%FT%TZ"), pid: @pid, index: @index, phase: @phase, booted: @booted,
        last_checkin: @last_checkin.strftime("%FT%TZ"), last_status: @last_status }
    end

    private

    def message(line)
      kind, rest = line.split(" ", 2)
      @checked_in = clock
      @last_checkin = Time.now.utc
      case kind
      when "booted"
        max, @mode = rest.to_s.split(" ", 2)
        @max_connections = Integer(max)
        @booted = true
      when "status"
        @last_status = JSON.parse(rest.to_s, symbolize_names: true)
        false
      else false
      end
    rescue JSON::ParserError, ArgumentError, TypeError
      false
    end

    def clock = Process.clock_gettime(Process::CLOCK_MONOTONIC)
  end
end
