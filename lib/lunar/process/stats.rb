# frozen_string_literal: true

require "json"

module Lunar
  # Puma's stats, key for key, so the tools that read Puma's (prometheus_exporter, yabeda,
  # puma-plugin-statsd, autoscalers) read Lunar's unchanged, plus Lunar's own keys:
  #
  #   single:  started_at, backlog, running, pool_capacity, busy_threads, max_threads,
  #            requests_count, and connections, max_connections, async_pending, parked_bodies,
  #            websockets, hijacked_sockets, topics, topic_subscribers, redis_links, redis_links_up,
  #            redis_dropped_publishes
  #   cluster: started_at, workers, phase, booted_workers, old_workers, worker_status[]
  #            (each: started_at, pid, index, phase, booted, last_checkin, last_status{single})
  #
  # `Lunar.stats` is the same as JSON in-process, as `Puma.stats`; `Lunar.stats_hash` as a Hash.
  module Stats
    @source = nil

    class << self
      # The runner whose stats `Lunar.stats` gives (single mode, a cluster's master or worker).
      attr_accessor :source

      def of_this_process
        source or raise "Lunar.stats: no Lunar runs in this process"
        source.stats
      end

      # A cluster master's stats, from what its workers last reported.
      def cluster(cluster)
        workers = cluster.workers
        { started_at: time(cluster.started_at), workers: workers.size, phase: cluster.phase,
          booted_workers: workers.count(&:booted?), old_workers: workers.count { |w| w.phase < cluster.phase },
          worker_status: workers.sort_by { |w| [w.index, w.pid] }.map(&:status) }
      end

      def time(at) = at.utc.strftime("%FT%TZ")

      # The Prometheus text exposition of `stats` (single or cluster): one `lunar_…` metric
      # per number, labelled `worker` in cluster mode.
      def metrics(stats)
        samples = Hash.new { |h, k| h[k] = [] }
        if stats.key?(:worker_status)
          CLUSTER_METRICS.each_key { |key| samples[key] << ["", stats[key]] }
          stats[:worker_status].each do |worker|
            labels = %({worker="#{worker[:index]}",pid="#{worker[:pid]}"})
            samples[:booted] << [labels, worker[:booted] ? 1 : 0]
            worker_samples(worker[:last_status] || {}).each { |key, value| samples[key] << [labels, value] }
          end
        else
          worker_samples(stats).each { |key, value| samples[key] << ["", value] }
        end
        exposition(samples)
      end

      private

      def worker_samples(stats)
        WORKER_METRICS.each_key.filter_map { |key| [key, stats[key]] if stats[key].is_a?(Numeric) }
      end

      def exposition(samples)
        samples.map do |key, rows|
          help, type = ALL_METRICS.fetch(key)
          name = metric_name(key, type)
          "# HELP #{name} #{help}\n# TYPE #{name} #{type}\n#{rows.map { |labels, value| "#{name}#{labels} #{value.to_i}\n" }.join}"
        end.join
      end

      def metric_name(key, type) = type == "counter" ? "lunar_#{key.to_s.delete_suffix('_count')}_total" : "lunar_#{key}"
    end

    # Each number a server reports: its help line and its Prometheus type.
    WORKER_METRICS = {
      backlog: ["Requests waiting for a Ruby thread", "gauge"],
      running: ["Ruby threads calling the app", "gauge"],
      pool_capacity: ["Ruby threads free to take a request", "gauge"],
      busy_threads: ["Ruby threads busy with a request", "gauge"],
      max_threads: ["Ruby threads at most", "gauge"],
      requests_count: ["Requests received since the start", "counter"],
      connections: ["Connections open", "gauge"],
      max_connections: ["Connections allowed at once (--max-conns)", "gauge"],
      async_pending: ["Async responses held and deferrable or parked bodies streaming", "gauge"],
      parked_bodies: ["Streamed bodies parked, waiting for a slow client", "gauge"],
      websockets: ["Native WebSockets open (Topic#websocket)", "gauge"],
      hijacked_sockets: ["Sockets handed to the app whole by rack.hijack and not yet closed by it", "gauge"],
      topics: ["Lunar::Topic objects in the process", "gauge"],
      topic_subscribers: ["Streams, held polls and WebSockets subscribed to a topic", "gauge"],
      redis_links: ["Redis links the topics use", "gauge"],
      redis_links_up: ["Redis links connected now", "gauge"],
      redis_dropped_publishes: ["Publishes dropped (Redis unreachable past 10,000 waiting, or refused)", "counter"],
    }.freeze
    CLUSTER_METRICS = {
      workers: ["Worker processes", "gauge"],
      booted_workers: ["Worker processes serving", "gauge"],
      old_workers: ["Worker processes of an earlier phase (a phased restart under way)", "gauge"],
      phase: ["Phased restarts since the start", "gauge"],
    }.freeze
    ALL_METRICS = WORKER_METRICS.merge(CLUSTER_METRICS).merge(booted: ["1 when the worker serves", "gauge"]).freeze
  end
end
