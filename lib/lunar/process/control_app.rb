# frozen_string_literal: true

require "json"
require "rack/utils"
require "lunar/process/stats"

module Lunar
  # Puma's control app, path for path (`activate_control_app URL, auth_token: TOKEN` or
  # `--control-url URL --control-token TOKEN`), plus Prometheus' `/metrics`:
  #
  #   /stats  /gc-stats  /thread-backtraces  /metrics      what the process does
  #   /phased-restart  /restart  /stop  /halt  /gc         what it is asked to do
  #
  # every one with `?token=TOKEN` (403 "Invalid auth token" without it, unless the token is
  # `none`); anything else is 404 "Unsupported action". `target` answers `stats`,
  # `gc_stats`, `thread_backtraces`, `phased_restart`, `restart`, `stop`, `halt`, `gc`
  # (QUESTIONS): the Single runner itself, or a cluster master reached through a Control::Link.
  class ControlApp
    NO_TOKEN = "none"
    OK = JSON.generate(status: "ok")
    JSON_HEADERS = { "content-type" => "application/json" }.freeze
    TEXT_HEADERS = { "content-type" => "text/plain" }.freeze
    METRICS_HEADERS = { "content-type" => "text/plain; version=0.0.4; charset=utf-8" }.freeze
    ACTIONS = { "phased-restart" => :phased_restart, "restart" => :restart, "stop" => :stop, "halt" => :halt, "gc" => :gc }.freeze
    # What the app asks its target: the three readings, then the actions.
    QUESTIONS = (%i[stats gc_stats thread_backtraces] + ACTIONS.values).freeze

    def initialize(target, token:)
      @target = target
      @token = token
    end

    def call(env)
      return [403, TEXT_HEADERS, ["Invalid auth token"]] unless authorized?(env)

      path = env["PATH_INFO"].to_s.delete_prefix("/")
      case path
      when "stats" then [200, JSON_HEADERS, [JSON.generate(@target.stats)]]
      when "gc-stats" then [200, JSON_HEADERS, [JSON.generate(@target.gc_stats)]]
      when "thread-backtraces" then [200, JSON_HEADERS, [JSON.generate(@target.thread_backtraces)]]
      when "metrics" then [200, METRICS_HEADERS, [Stats.metrics(@target.stats)]]
      when *ACTIONS.keys then act(ACTIONS.fetch(path))
      else [404, TEXT_HEADERS, ["Unsupported action"]]
      end
    end

    private

    def authorized?(env)
      return true if @token == NO_TOKEN

      given = Rack::Utils.parse_query(env["QUERY_STRING"].to_s)["token"].to_s
      !@token.to_s.empty? && Rack::Utils.secure_compare(given, @token.to_s)
    end

    def act(action)
      @target.public_send(action)
      [200, JSON_HEADERS, [OK]]
    end
  end
end
