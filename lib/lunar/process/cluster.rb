# frozen_string_literal: true

require "lunar/process/runner"
require "lunar/process/worker"
require "lunar/process/worker_handle"
require "lunar/process/control"
require "lunar/process/stats"

module Lunar
  # Cluster mode (`-w N`), Puma's Cluster: this master forks N workers that each run a whole
  # Lunar (its own tokio runtime, and Ruby threads or an EventMachine reactor) on the
  # sockets the launcher bound, and from then on only watches them. It starts no tokio
  # runtime and no thread, before forking or after.
  #
  # The sockets are inherited, not bound again by each worker with SO_REUSEPORT: all workers
  # then share one accept queue, so connections waiting in it when a worker stops are taken
  # by the others (each SO_REUSEPORT socket has its own queue, reset when it closes: a phased
  # restart would refuse connections), and an idle worker takes the next connection.
  #
  # Signals: TERM/QUIT drain every worker, then exit; INT stops them at once; USR1 replaces
  # the workers one at a time (a phased restart: each new one boots before its old one
  # drains); USR2 drains them all and re-executes the master on the same sockets (a hot
  # restart); HUP reopens the log files, the workers' too; TTIN/TTOU add or remove a worker.
  # A worker that dies is replaced; one that stops checking in for `worker_timeout` is
  # killed and replaced; one that cannot boot BOOT_ATTEMPTS times in a row stops the cluster.
  class Cluster < Runner
    BOOT_ATTEMPTS = 3
    # A worker told to stop (a stop, a stuck one) gets this long past its grace before KILL.
    KILL_AFTER_GRACE = 5
    SIGNALS = %w[TERM QUIT INT USR1 USR2 HUP TTIN TTOU CHLD].freeze

    attr_reader :phase

    def initialize(launcher)
      super
      @count = config[:workers]
      @workers = {} # pid → WorkerHandle
      @signals = []
      @failures = 0
      @phase = 0
      @replacing = nil
      @stopping = nil
      @error = nil
      @control = nil # [pid, Control::Desk] of the control process
    end

    # Runs the cluster until it is stopped: `:stopped`, `:failed` or `:restart`.
    def run
      title("lunar master")
      @wake, @waker = IO.pipe
      @alive, @alive_writer = IO.pipe # workers see end-of-file when the master is gone
      redirect_io
      write_pid
      trap_signals
      Stats.source = self
      run_hooks(:before_fork)
      start_control
      watch until @stopping && @workers.empty?
      stop_control
      run_hooks(:after_stopped)
      say(restart? ? "Lunar cluster restarting" : "Lunar cluster stopped")
      return :restart if restart?

      @error ? :failed : :stopped
    ensure
      delete_pid
    end

    def workers = @workers.values

    # Puma's cluster stats (Stats.cluster), from what the workers last reported.
    def stats = Stats.cluster(self)

    def halt = stop(:now)

    # A graceful stop (TERM, the control app's /stop) or one at once (INT, /halt).
    def stop(how = :graceful)
      return if @stopping

      @stopping = how
      @replacing = nil # a stop ends a phased restart: no more replacements
      notify(restart? ? "RELOADING=1" : "STOPPING=1")
      grace = how == :now ? 0 : config[:shutdown_timeout]
      @kill_at = now + grace + KILL_AFTER_GRACE
      say(how == :now ? "Lunar cluster stopping now" : "Lunar cluster stopping gracefully (up to #{grace}s)")
      signal_all(how == :now ? "INT" : "TERM")
    end

    # Every worker replaced, one at a time (USR1, the control app's /phased-restart).
    def phased_restart
      return if @stopping || @replacing

      @phase += 1
      notify("RELOADING=1")
      say("phased restart: replacing #{serving.size} workers one at a time")
      @replacing = serving.sort_by(&:index)
    end

    # A hot restart (USR2, tmp/restart.txt, /restart): every worker drains, then the master execs.
    def restart
      restart!
      stop(:graceful)
    end

    def reopen_logs
      redirect_io if redirected?
      signal_all("HUP")
    end

    private

    # One turn of the master's loop: wait for a signal, a child's exit or a worker's line
    # (at most a second), then act on what happened.
    def watch
      readable = wait_for_events
      handle(@signals.shift) until @signals.empty?
      reap
      @workers.each_value { |w| booted(w) if readable.include?(w.pipe) && w.read }
      enforce_deadlines
      feed_watchdog
      advance_phase
      keep_count unless @stopping
    end

    # Waits for a signal, a worker's line or the control process's question; answers the
    # question at once. Returns what is readable.
    def wait_for_events
      desk = @control&.last
      pipes = @workers.values.select(&:open?).map(&:pipe)
      readable, = IO.select([@wake, *pipes, desk&.socket].compact, nil, nil, 1)
      readable ||= []
      @wake.read_nonblock(4096, exception: false) if readable.include?(@wake)
      desk.answer if desk && readable.include?(desk.socket)
      readable
    end

    def trap_signals
      SIGNALS.each do |signal|
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
      when "USR2" then restart
      when "HUP" then reopen_logs
      when "TTIN" then @count += 1
      when "TTOU" then @count -= 1 if @count > 1
      end
    end

    # The phased restart's next step: boot a replacement for the first old worker; once it
    # is ready, drain the old one and go on to the next.
    def advance_phase
      return unless @replacing

      # Nothing to replace for an old worker that has gone (died, and was replaced with
      # the new code already), is being retired, or is past the count (TTOU).
      @replacing.shift while @replacing.first && (!@workers.value?(@replacing.first) || @replacing.first.retiring || @replacing.first.index >= @count)
      old = @replacing.first
      return finish_phase unless old

      replacement = serving.find { |w| w.index == old.index && !w.equal?(old) }
      if replacement.nil?
        start_worker(old.index)
      elsif replacement.booted?
        retire(old)
        @replacing.shift
      end
    end

    def finish_phase
      @replacing = nil
      ready(cluster_status)
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
      pipe, writer = IO.pipe
      run_hooks(:before_worker_fork, index)
      pid = fork do
        # The master's traps write to its pipe, closed just below: the worker sets its own.
        SIGNALS.each { |signal| Signal.trap(signal, "DEFAULT") }
        [pipe, @wake, @waker, @alive_writer, @control&.last&.socket, *@workers.values.map(&:pipe)].compact.each { |io| io.close unless io.closed? }
        Worker.new(launcher, index: index, pipe: writer, master_alive: @alive).run
      end
      writer.close
      run_hooks(:after_worker_fork, index)
      @workers[pid] = WorkerHandle.new(index: index, pid: pid, phase: @phase, pipe: pipe)
    end

    def booted(worker)
      @failures = 0
      say("worker #{worker.index} booted, pid #{worker.pid}, phase #{worker.phase}")
      announce unless @announced
    end

    # The boot line, once every first worker is up.
    def announce
      return unless serving.size >= @count && serving.all?(&:booted?)

      @announced = true
      ready(cluster_status)
      run_hooks(:after_booted)
      per_worker = serving.first.max_connections
      say("Lunar #{VERSION} (ruby #{RUBY_VERSION}, rack #{rack_version}) cluster of #{@count} workers, #{serving.first.mode} each, " \
          "master pid #{Process.pid}, up to #{@count} × #{per_worker} = #{@count * per_worker} connections, " \
          "listening on #{launcher.binder.addresses.join(', ')}")
    end

    def cluster_status = "Lunar #{VERSION}: #{serving.count(&:booted?)} of #{@count} workers serving, phase #{@phase}"

    # Collects every exited worker.
    def reap
      loop do
        pid, status = Process.wait2(-1, Process::WNOHANG)
        break unless pid

        worker = @workers.delete(pid)
        exited(worker, status) if worker
        control_exited(status) if @control&.first == pid
      end
    rescue Errno::ECHILD
      nil
    end

    def exited(worker, status)
      worker.close_pipe
      run_hooks(:after_worker_shutdown, worker)
      return if @stopping || worker.retiring

      return say("worker #{worker.index} (pid #{worker.pid}) #{describe(status)}; starting another") if worker.booted?

      @failures += 1
      Log.error("worker #{worker.index} (pid #{worker.pid}) failed to boot: #{describe(status)}")
      return if @failures < BOOT_ATTEMPTS

      @error = "workers failed to boot #{@failures} times in a row; stopping the cluster (see the errors above)"
      Log.error(@error)
      stop(:graceful)
    end

    # Workers that stopped checking in (or booting) in time are stopped and replaced;
    # workers told to stop that did not, in time, are killed.
    def enforce_deadlines
      @workers.each_value do |w|
        limit = w.booted? ? config[:worker_timeout] : config[:worker_boot_timeout]
        stuck(w, limit) if !w.retiring && w.silent_for > limit
        kill(w) if w.kill_at && now > w.kill_at
      end
      signal_all("KILL") if @stopping && now > @kill_at
    end

    def stuck(worker, limit)
      what = worker.booted? ? "check in" : "boot"
      Log.error("worker #{worker.index} (pid #{worker.pid}) did not #{what} within #{limit}s: stopping it, a new one takes its place")
      retire(worker, grace: 0, quietly: true)
      @failures += 1 unless worker.booted?
    end

    # TERM: the worker drains for its grace, then KILL_AFTER_GRACE more before KILL.
    def retire(worker, grace: config[:shutdown_timeout], quietly: false)
      return if worker.retiring

      worker.retiring = true
      worker.kill_at = now + grace + KILL_AFTER_GRACE
      say("worker #{worker.index} (pid #{worker.pid}) stopping") unless quietly
      Process.kill("TERM", worker.pid)
    rescue Errno::ESRCH
      nil
    end

    def kill(worker)
      Process.kill("KILL", worker.pid)
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

    # WATCHDOG=1 from the master's loop (it turns at least once a second) while it runs.
    def feed_watchdog
      @watchdog_every = watchdog_every || false if @watchdog_every.nil?
      return unless @watchdog_every && now >= (@watchdog_at ||= 0)

      notify("WATCHDOG=1")
      @watchdog_at = now + @watchdog_every
    end

    # The control app's process (--control-url), forked before the workers; one that dies
    # is replaced, one that cannot start (its URL cannot be bound) stops the cluster.
    def start_control
      return unless config[:control_url]

      closing = [@wake, @waker, @alive_writer, *@workers.values.map(&:pipe)]
      @control = Control.fork_process(self, config, alive: @alive, closing: closing)
    end

    def control_exited(status)
      @control.last.socket.close
      @control = nil
      return if @stopping

      if status.exitstatus == 2
        @error = "the control app cannot start; stopping the cluster"
        Log.error(@error)
        return stop(:graceful)
      end
      Log.warn("the control app's process #{describe(status)}; starting another")
      start_control
    end

    def stop_control
      return unless @control

      Process.kill("TERM", @control.first)
      Process.wait(@control.first)
    rescue Errno::ESRCH, Errno::ECHILD
      nil
    end

    def serving = @workers.values.reject(&:retiring)
    def now = Process.clock_gettime(Process::CLOCK_MONOTONIC)

    def describe(status)
      status.signaled? ? "killed by SIG#{Signal.signame(status.termsig)}" : "exited with status #{status.exitstatus}"
    end
  end
end
