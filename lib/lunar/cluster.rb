# frozen_string_literal: true

require "lunar/cluster/worker"
require "lunar/systemd"

module Lunar
  # Cluster mode (`-w N`), in Puma's shape: this master binds the listening sockets, forks N
  # workers that each run a whole Lunar on them (a tokio runtime and Ruby threads, or an
  # EventMachine reactor, of their own), and from then on only watches. It starts no tokio
  # runtime and no thread, before forking or after.
  #
  # The sockets are inherited, not bound again by each worker with SO_REUSEPORT: all workers
  # then share one accept queue, so connections waiting in it when a worker stops are taken
  # by the others (each SO_REUSEPORT socket has its own queue, reset when it closes: a phased
  # restart would refuse connections), and an idle worker takes the next connection instead
  # of the kernel's hash picking a busy one.
  #
  # Signals: TERM/QUIT drain every worker, then exit; INT stops them at once; USR1 replaces
  # the workers one at a time (a phased restart: each new one boots before its old one
  # drains); TTIN/TTOU add or remove a worker. A worker that dies is replaced; a worker that
  # cannot boot BOOT_ATTEMPTS times in a row stops the cluster.
  class Cluster
    BOOT_ATTEMPTS = 3
    # A stop gives the workers their own grace period plus this long before killing them.
    KILL_AFTER_GRACE = 5

    # A worker as the master tracks it.
    Handle = Struct.new(:index, :pid, :ready, :booted, :started_at, :retiring, keyword_init: true)

    # `options`: the workers' Lunar::Server options (with the binder's sockets);
    # `cluster`: workers:, preload_app:, worker_boot_timeout:, hooks:.
    def initialize(options, cluster, binder:, load_app:, pid_file: nil, out: $stdout)
      @options = options.merge(binder.options)
      @binder = binder
      @count = cluster.fetch(:workers)
      @preload = cluster[:preload_app]
      @boot_timeout = cluster[:worker_boot_timeout] || 60
      @hooks = cluster[:hooks] || Hash.new { |h, k| h[k] = [] }
      @load_app = load_app
      @pid_file = pid_file
      @out = out
      @quiet = options[:quiet]
      @workers = {} # pid → Handle
      @signals = []
      @failures = 0
      @phase = nil
      @stopping = nil
      @error = nil
    end

    # Runs the cluster until it is stopped; returns the exit status.
    def run
      @app = @load_app.call if @preload
      @wake, @waker = IO.pipe
      @alive, @alive_writer = IO.pipe # workers see end-of-file when the master is gone
      File.write(@pid_file, "#{Process.pid}\n") if @pid_file
      trap_signals
      @hooks[:before_fork].each(&:call)
      watch until @stopping && @workers.empty?
      say("Lunar cluster stopped")
      @error ? 1 : 0
    ensure
      File.delete(@pid_file) if @pid_file && File.exist?(@pid_file)
      @binder.remove_socket_files
    end

    private

    # One turn of the master's loop: wait for a signal, a child's exit or a worker's ready
    # line (at most a second), then act on what happened.
    def watch
      readable, = IO.select([@wake, *booting.map(&:ready)], nil, nil, 1)
      @wake.read_nonblock(4096, exception: false) if readable&.include?(@wake)
      handle(@signals.shift) until @signals.empty?
      reap
      booting.each { |worker| read_ready(worker) if readable&.include?(worker.ready) }
      enforce_deadlines
      advance_phase
      keep_count unless @stopping
    end

    def trap_signals
      %w[TERM QUIT INT USR1 TTIN TTOU CHLD].each do |signal|
        Signal.trap(signal) do
          @signals << signal
          @waker.write_nonblock(".", exception: false)
        end
      end
    end

    def handle(signal)
      case signal
      when "TERM", "QUIT" then stop(:graceful)
      when "INT" then @stopping ? signal_all("KILL") : stop(:now)
      when "USR1" then phased_restart
      when "TTIN" then @count += 1
      when "TTOU" then @count -= 1 if @count > 1
      end
    end

    def stop(how)
      return if @stopping

      @stopping = how
      @phase = nil # a stop ends a phased restart: no more replacements
      Systemd.notify("STOPPING=1")
      grace = how == :now ? 0 : Configuration.new(@options)[:shutdown_timeout]
      @kill_at = now + grace + KILL_AFTER_GRACE
      say(how == :now ? "Lunar cluster stopping now" : "Lunar cluster stopping gracefully (up to #{grace}s)")
      signal_all(how == :now ? "INT" : "TERM")
    end

    def phased_restart
      return if @stopping || @phase

      Systemd.notify("RELOADING=1")
      say("phased restart: replacing #{serving.size} workers one at a time")
      @phase = serving.sort_by(&:index)
    end

    # The phased restart's next step: boot a replacement for the first old worker; once it
    # is ready, drain the old one and go on to the next.
    def advance_phase
      return unless @phase

      # Nothing to replace for an old worker that has gone (died, and was replaced with
      # the new code already), is being retired, or is past the count (TTOU).
      @phase.shift while @phase.first && (!@workers.value?(@phase.first) || @phase.first.retiring || @phase.first.index >= @count)
      old = @phase.first
      return finish_phase unless old

      replacement = serving.find { |w| w.index == old.index && !w.equal?(old) }
      if replacement.nil?
        start_worker(old.index)
      elsif replacement.booted
        retire(old)
        @phase.shift
      end
    end

    def finish_phase
      @phase = nil
      Systemd.notify("READY=1")
      say("phased restart done")
    end

    # Starts workers for empty slots and retires those past the count (TTOU).
    def keep_count
      serving.select { |w| w.index >= @count }.each { |w| retire(w) }
      @count.times do |index|
        start_worker(index) unless serving.any? { |w| w.index == index }
      end
    end

    def start_worker(index)
      ready, ready_writer = IO.pipe
      pid = fork do
        # The master's traps write to its pipe, closed just below: the worker sets its own.
        %w[TERM QUIT INT USR1 TTIN TTOU CHLD].each { |signal| Signal.trap(signal, "DEFAULT") }
        [ready, @wake, @waker, @alive_writer, *@workers.values.map(&:ready)].each { |io| io.close unless io.closed? }
        Worker.new(index: index, app: @app, load_app: @load_app, options: @options, hooks: @hooks,
                   ready: ready_writer, master_alive: @alive).run
      end
      ready_writer.close
      @workers[pid] = Handle.new(index: index, pid: pid, ready: ready, booted: false, started_at: now, retiring: false)
    end

    def read_ready(worker)
      line = worker.ready.read_nonblock(4096, exception: false)
      return unless line.is_a?(String) && line.start_with?("ready")

      worker.booted = true
      worker.ready.close
      @failures = 0
      _, max_connections, mode = line.chomp.split(" ", 3)
      say("worker #{worker.index} booted, pid #{worker.pid}")
      announce(Integer(max_connections), mode) unless @announced
    end

    # The boot line, once every first worker is up.
    def announce(per_worker, mode)
      return unless serving.size >= @count && serving.all?(&:booted)

      @announced = true
      Systemd.notify("READY=1")
      rack = defined?(::Rack.release) ? ::Rack.release : "none"
      say("Lunar #{VERSION} (ruby #{RUBY_VERSION}, rack #{rack}) cluster of #{@count} workers, #{mode} each, " \
          "master pid #{Process.pid}, up to #{@count} × #{per_worker} = #{@count * per_worker} connections, " \
          "listening on #{addresses.join(', ')}")
    end

    def addresses
      @binder.binds.map do |bind|
        address = Native.listen_address(@binder.listen_fds.fetch(bind))
        bind.start_with?("ssl://") ? address.sub("tcp://", "ssl://") : address
      end
    end

    # Collects every exited worker.
    def reap
      loop do
        pid, status = Process.wait2(-1, Process::WNOHANG)
        break unless pid

        worker = @workers.delete(pid)
        exited(worker, status) if worker
      end
    rescue Errno::ECHILD
      nil
    end

    def exited(worker, status)
      worker.ready.close unless worker.ready.closed?
      return if @stopping || worker.retiring

      if worker.booted
        say("worker #{worker.index} (pid #{worker.pid}) #{describe(status)}; starting another")
        return
      end
      @failures += 1
      warn "lunar: worker #{worker.index} (pid #{worker.pid}) failed to boot: #{describe(status)}"
      return if @failures < BOOT_ATTEMPTS

      @error = "workers failed to boot #{@failures} times in a row; stopping the cluster (see the errors above)"
      warn "lunar: #{@error}"
      stop(:graceful)
    end

    def enforce_deadlines
      booting.each { |w| Process.kill("KILL", w.pid) if now - w.started_at > @boot_timeout }
      signal_all("KILL") if @stopping && now > @kill_at
    rescue Errno::ESRCH
      nil
    end

    def retire(worker)
      return if worker.retiring

      worker.retiring = true
      say("worker #{worker.index} (pid #{worker.pid}) stopping")
      Process.kill("TERM", worker.pid)
    rescue Errno::ESRCH
      nil
    end

    def signal_all(signal)
      @workers.each_key do |pid|
        Process.kill(signal, pid)
      rescue Errno::ESRCH
        nil
      end
    end

    def serving = @workers.values.reject(&:retiring)
    def booting = @workers.values.reject { |w| w.booted || w.ready.closed? }
    def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    def describe(status)
      status.signaled? ? "killed by SIG#{Signal.signame(status.termsig)}" : "exited with status #{status.exitstatus}"
    end

    def say(line)
      return if @quiet

      @out.puts(line)
      @out.flush
    end
  end
end
