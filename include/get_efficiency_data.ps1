<#
.SYNOPSIS
    Collects the storage-efficiency figures of finished Veeam Backup & Replication job
    sessions in a time window, and each backup job's storage settings, and writes them to
    stdout as one JSON document.

.DESCRIPTION
    Runs on the VBR server itself. Reads the sessions whose CreationTime lies in
    [From, To) (UTC), skips sessions that are still running, reads the storage settings of
    the backup jobs and their repositories, and emits the collector contract of the
    veeam_efficiency DAG package (schema_version 2, see plugins/veeam_efficiency/contract.py):
    one JSON object, UTF-8 without BOM, on stdout. Everything else (progress, a heartbeat at
    least every 30 s, the data path that ran, per-job-type counts, errors) goes to stderr.
    Any failure exits with code 1 and a message on stderr; stdout then holds nothing.

    Veeam's figures are passed through unchanged: sessions with BackupStats of 0 are emitted
    as such (the downstream validator counts zero-data sessions out); no ratio is ever
    computed or invented here.

    Per-machine child sessions (agent backup policies; VBR 12 backup copy jobs) are emitted
    under their parent job: job_id and job_name are the parent's (Info.PolicyTag and
    Info.PolicyName), object_name names the machine. The parent's own session carries no
    data and is counted out downstream like any zero-data session.

.PARAMETER From
    Start of the window, inclusive. ISO 8601 UTC, e.g. 2026-10-28T00:00:00Z.

.PARAMETER To
    End of the window, exclusive. ISO 8601 UTC, e.g. 2026-10-29T00:00:00Z. Must be after From.

.PARAMETER JobName
    Optional job names to keep (exact, case-insensitive; child sessions match by their parent
    job's name). For people running the script by hand.

.PARAMETER JobNameBase64
    Optional base64 of a UTF-8 JSON array of job names, e.g. the base64 of ["Daily SQL"].
    This is what the DAG passes, so no shell ever sees a job name. Combined with -JobName
    as a union; when neither yields a name, all backup jobs are collected.

.PARAMETER AllowFullSessionScan
    Allow the last-resort data path, Get-VBRBackupSession, which reads the whole session
    table (9 h 40 min on a 42k-session VBR 12.3 server; an internal ~600 s timeout on VBR 13).
    Without it the collection fails, naming the indexed query that this VBR build lacks.

.PARAMETER Diagnose
    First-contact check (the veeam_vbr_check DAG): the same collection, plus a `diagnostics`
    object in the document (versions, the data path and why, sessions per job type, settings
    found, timings, what is missing). A missing indexed query or unreadable settings are
    reported there instead of failing the run.

.EXAMPLE
    powershell.exe -NoProfile -NonInteractive -File .\get_efficiency_data.ps1 -From 2026-10-28T00:00:00Z -To 2026-10-29T00:00:00Z

.EXAMPLE
    pwsh -NoProfile -NonInteractive -File .\get_efficiency_data.ps1 -From 2026-10-28T00:00:00Z -To 2026-10-29T00:00:00Z -JobName 'Daily SQL', 'File servers' -Diagnose

.NOTES
    Runs on Windows PowerShell 5.1 (VBR 12) and PowerShell 7 (VBR 13) on Windows. The VBR 13
    Linux appliance has no PowerShell: this script cannot run there. Read-only.

    Permissions: VBR 12 needs a VBR user role of at least "Veeam Backup Viewer"; VBR 13
    requires the "Veeam Backup Administrator" role for any PowerShell session. Accounts with
    multi-factor authentication enabled cannot use the Veeam PowerShell module (use a service
    account without MFA). The account must be allowed to load the Veeam.Backup.PowerShell
    module on this server, and the execution policy must allow this local, unsigned script
    (RemoteSigned, the Windows Server default, does).

    Data paths, tried in this order (the one that ran, and why, is written to stderr):
      1. type-interval: [Veeam.Backup.Core.CBackupSession]::GetByTypeAndTimeInterval(type, from, to)
         once per job type the server defines. Indexed query on the session table; fastest.
      2. policy-range: CBackupSession::GetAllSessionsByPolicyJobAndTimeRange(jobId, from, to) per
         job: returns the job's sessions and its per-machine child sessions.
      3. job-range: CBackupSession::GetByJobAndTimeRangeWithLog(jobId, from), or GetByJob(jobId),
         per job. Misses per-machine child sessions (said on stderr and in the diagnostics).
      4. full scan, only with -AllowFullSessionScan: Get-VBRBackupSession filtered on
         CreationTime. Reads the whole session table and misses agent
         (Get-VBRComputerBackupJobSession) and file-share (Get-VBRUnstructuredBackupSession)
         sessions, which is said on stderr and in the diagnostics.
    Paths 1-3 use Veeam's internal, undocumented .NET API; each method is probed by
    reflection, after a cheap cmdlet call has loaded Veeam's assemblies (they load lazily).
    The internal queries get a window widened by a day on each side (they may compare server
    local time); the exact [From, To) filter is applied here, in UTC.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [datetime] $From,

    [Parameter(Mandatory = $true)]
    [datetime] $To,

    [string[]] $JobName,

    [string] $JobNameBase64,

    [switch] $AllowFullSessionScan,

    [switch] $Diagnose
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'
$WarningPreference = 'SilentlyContinue'    # Veeam cmdlets warn on stdout-bound streams
$ProgressPreference = 'SilentlyContinue'
$InformationPreference = 'SilentlyContinue'

# Job types (names of Veeam.Backup.Model.EDbJobType) whose sessions are backups even when they
# wrote nothing (a failed run). Sessions of any other type are kept when their BackupStats
# report data (DataSize > 0), so a type this list does not know is still scored.
$BackupJobTypes = @(
    'Backup', 'BackupSync', 'SimpleBackupCopyPolicy', 'SimpleBackupCopyWorker',
    'EndpointBackup', 'EpAgentBackup', 'EpAgentPolicy', 'EpAgentManagement',
    'NasBackup', 'NasBackupCopy', 'OracleRMANBackup', 'SapHanaBackintBackup', 'SapBackintBackup',
    'MSSQLPluginBackup', 'VmbApiPolicyTempJob'
)
# Jobs whose sessions are per-machine children under a parent (policy) session.
$PolicyJobTypes = @('EpAgentPolicy', 'EpAgentManagement', 'SimpleBackupCopyPolicy', 'BackupSync')
$RunningStates = @('Starting', 'Working', 'Stopping', 'Pausing', 'Resuming', 'Postprocessing',
    'WaitingTape', 'WaitingSlot', 'WaitingRepository', 'Idle', 'Pending', 'ActionRequired')
$Algorithms = @('Full', 'Increment', 'Synthetic')
$Results = @('Success', 'Warning', 'Failed')
# Veeam's compression levels as Get-VBRJob stores them (Options.BackupStorageOptions.CompressionLevel).
$CompressionLevels = @{ '-1' = 'Auto'; '0' = 'None'; '4' = 'DedupeFriendly'; '5' = 'Optimal'; '6' = 'High'; '9' = 'Extreme' }
$BlockSizesKb = @(256, 512, 1024, 4096, 8192)
# Backup copy and agent jobs name a storage optimization instead of a block size.
$StorageOptimizationKb = @{ WANTarget = 256; LANTarget = 512; LocalTarget = 1024; LocalTargetHugeBackup = 4096; LocalTargetLargeBlocks = 4096 }
$HeartbeatSeconds = 30    # the SSH idle timeout must never see a working collection as silent

function Write-Diagnostic {
    # stderr only: under powershell.exe -File, Write-Host and Write-Warning end up on stdout.
    param([string] $Message)
    [Console]::Error.WriteLine('get_efficiency_data: ' + $Message)
}

function Get-ErrorText {
    # The innermost exception says what went wrong (reflection wraps it in TargetInvocationException).
    param($ErrorRecord)
    $exception = $ErrorRecord.Exception
    while ($null -ne $exception.InnerException) { $exception = $exception.InnerException }
    $where = ''
    if ($null -ne $ErrorRecord.InvocationInfo) { $where = ' (script line {0})' -f $ErrorRecord.InvocationInfo.ScriptLineNumber }
    return ('{0}: {1}{2}' -f $exception.GetType().Name, $exception.Message, $where)
}

function Start-Heartbeat {
    # A second runspace writes a line to stderr every $HeartbeatSeconds while this one blocks in
    # a long .NET call (a session query can take hours): the SSH transport sees a live command,
    # and the DAG's wall-clock limit, not silence, decides when a collection has run too long.
    param([hashtable] $State)
    $shell = [powershell]::Create()
    [void] $shell.AddScript({
            param($State, $Seconds)
            while ($true) {
                Start-Sleep -Seconds $Seconds
                $elapsed = [int] ([datetime]::UtcNow - $State['started']).TotalSeconds
                [Console]::Error.WriteLine(('get_efficiency_data: heartbeat: {0} s, {1}' -f $elapsed, $State['phase']))
            }
        }).AddArgument($State).AddArgument($HeartbeatSeconds)
    [void] $shell.BeginInvoke()
    return $shell
}

function Stop-Heartbeat {
    param($Shell)
    if ($null -eq $Shell) { return }
    try { $Shell.Stop(); $Shell.Dispose() } catch { Write-Diagnostic ('heartbeat did not stop cleanly: ' + $_.Exception.Message) }
}

function Set-Phase {
    # What the heartbeat reports, and the seconds spent per step for the diagnostics.
    param([string] $Phase, [string] $Step = $Phase)
    $now = [datetime]::UtcNow
    $previous = $Progress['step']
    if (-not $Timings.Contains($previous)) { $Timings[$previous] = 0.0 }
    $Timings[$previous] += [math]::Round(($now - $Progress['phase_started']).TotalSeconds, 3)
    $Progress['phase'] = $Phase
    $Progress['step'] = $Step
    $Progress['phase_started'] = $now
}

function Format-UtcTime {
    param([datetime] $Time)
    $culture = [System.Globalization.CultureInfo]::InvariantCulture
    return $Time.ToUniversalTime().ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'fff'Z'", $culture)
}

function Get-OptionalValue {
    # A property path ('Options.Uncompress') read without tripping StrictMode: $null as soon as
    # one step is missing or null. Veeam renames and moves properties between versions.
    param($Object, [string] $Path)
    $node = $Object
    foreach ($name in $Path.Split('.')) {
        if ($null -eq $node) { return $null }
        $property = $node.PSObject.Properties[$name]
        if ($null -eq $property) { return $null }
        $node = $property.Value
    }
    return $node
}

function Get-UtcProperty {
    # CreationTime/EndTime are server local time; prefer Veeam's *UTC twin where it exists.
    param($Session, [string] $Name)
    $utc = $Session.PSObject.Properties[$Name + 'UTC']
    if ($null -ne $utc -and $utc.Value -is [datetime]) {
        return [datetime]::SpecifyKind($utc.Value, [System.DateTimeKind]::Utc)
    }
    return ([datetime] $Session.$Name).ToUniversalTime()
}

function ConvertFrom-JobNameBase64 {
    # Emits the job names; rejects anything but a JSON array of strings.
    param([string] $Encoded)
    try {
        $bytes = [System.Convert]::FromBase64String($Encoded)
        $text = (New-Object System.Text.UTF8Encoding($false, $true)).GetString($bytes)
    } catch {
        throw '-JobNameBase64 is not base64 of UTF-8 text'
    }
    if (-not $text.TrimStart().StartsWith('[')) {
        throw '-JobNameBase64 must be base64 of a JSON array of job names'
    }
    foreach ($item in (ConvertFrom-Json -InputObject $text)) {
        if ($item -isnot [string]) { throw '-JobNameBase64 must be base64 of a JSON array of strings' }
        $item
    }
}

function Get-ConsoleModulePath {
    # The module as the VBR console installs it: <install folder>\Console\Veeam.Backup.PowerShell.
    $root = $null
    try {
        $key = Get-ItemProperty -Path 'HKLM:\SOFTWARE\Veeam\Veeam Backup and Replication' -ErrorAction Stop
        $corePath = Get-OptionalValue $key 'CorePath'
        if ($corePath) { $root = Split-Path -Path ([string] $corePath).TrimEnd('\') -Parent }
    } catch {
        Write-Diagnostic ('no VBR install folder in the registry: ' + $_.Exception.Message)
    }
    if (-not $root) { $root = Join-Path $env:ProgramFiles 'Veeam\Backup and Replication' }
    return (Join-Path $root 'Console\Veeam.Backup.PowerShell\Veeam.Backup.PowerShell.psd1')
}

function Import-VeeamModule {
    # By name first; then from the console's install folder; else fail naming both attempts.
    try {
        Import-Module -Name Veeam.Backup.PowerShell -DisableNameChecking -WarningAction SilentlyContinue -ErrorAction Stop
        return 'Veeam.Backup.PowerShell (module path)'
    } catch {
        $byName = $_.Exception.Message
    }
    $consolePath = Get-ConsoleModulePath
    try {
        Import-Module -Name $consolePath -DisableNameChecking -WarningAction SilentlyContinue -ErrorAction Stop
        return $consolePath
    } catch {
        $message = "cannot load the Veeam PowerShell module: Import-Module Veeam.Backup.PowerShell failed ({0}) " +
            "and Import-Module '{1}' failed ({2}). VBR 12 needs Windows PowerShell 5.1, VBR 13 PowerShell 7; " +
            'run this script on the VBR server (or a machine with its console) with an account allowed to load the module.'
        throw ($message -f $byName, $consolePath, $_.Exception.Message)
    }
}

function Connect-LocalVbrServer {
    # VBR 13 asks to accept the server's TLS certificate, which -NonInteractive cannot answer:
    # pass -ForceAcceptTlsCertificate where this version's cmdlet has it (VBR 12's has not).
    if ($null -ne (Get-VBRServerSession -ErrorAction SilentlyContinue)) { return }
    $connect = @{ Server = 'localhost'; ErrorAction = 'Stop' }
    if ((Get-Command -Name Connect-VBRServer).Parameters.ContainsKey('ForceAcceptTlsCertificate')) {
        $connect['ForceAcceptTlsCertificate'] = $true
    }
    Connect-VBRServer @connect | Out-Null
}

function Get-VbrVersion {
    # Get-VBRBackupServerInfo where it exists, else the file version of Veeam.Backup.Core.dll.
    try {
        if ($null -ne (Get-Command -Name Get-VBRBackupServerInfo -ErrorAction SilentlyContinue)) {
            $build = [string] (Get-VBRBackupServerInfo).Build
            if ($build) { return $build }
        }
    } catch {
        Write-Diagnostic ('Get-VBRBackupServerInfo failed: ' + $_.Exception.Message)
    }
    try {
        $coreType = 'Veeam.Backup.Core.CBackupSession' -as [type]
        if ($null -ne $coreType) {
            $file = [System.Diagnostics.FileVersionInfo]::GetVersionInfo($coreType.Assembly.Location)
            if ($file.FileVersion) { return [string] $file.FileVersion }
        }
    } catch {
        Write-Diagnostic ('cannot read the version of Veeam.Backup.Core.dll: ' + $_.Exception.Message)
    }
    return 'unknown'
}

function Get-VbrHostName {
    try {
        $name = [System.Net.Dns]::GetHostEntry('').HostName
        if ($name) { return $name }
    } catch {
        Write-Diagnostic ('DNS lookup of this host failed, using the computer name: ' + $_.Exception.Message)
    }
    if ($env:COMPUTERNAME) { return $env:COMPUTERNAME }
    return [System.Environment]::MachineName
}

function Get-SessionApi {
    # Probe the indexed internal queries by reflection, after a cheap cmdlet call has made
    # Veeam load its assemblies (before that, [Veeam.Backup.Core.CBackupSession] is not there
    # and the script would silently take the slow path).
    [void] @(Get-VBRServer -Type Local -ErrorAction SilentlyContinue)
    $api = @{ ByType = $null; ByPolicy = $null; ByJob = $null; JobTypeEnum = $null; Missing = @() }
    $sessionClass = 'Veeam.Backup.Core.CBackupSession' -as [type]
    $api.JobTypeEnum = 'Veeam.Backup.Model.EDbJobType' -as [type]
    if ($null -eq $sessionClass) {
        $api.Missing += 'type Veeam.Backup.Core.CBackupSession is not loaded (Veeam.Backup.Core.dll)'
        return $api
    }
    if ($null -ne $api.JobTypeEnum) {
        $api.ByType = $sessionClass.GetMethod('GetByTypeAndTimeInterval', [type[]] @($api.JobTypeEnum, [datetime], [datetime]))
    }
    if ($null -eq $api.ByType) { $api.Missing += 'CBackupSession.GetByTypeAndTimeInterval(EDbJobType, DateTime, DateTime)' }
    $api.ByPolicy = $sessionClass.GetMethod('GetAllSessionsByPolicyJobAndTimeRange', [type[]] @([guid], [datetime], [datetime]))
    if ($null -eq $api.ByPolicy) { $api.Missing += 'CBackupSession.GetAllSessionsByPolicyJobAndTimeRange(Guid, DateTime, DateTime)' }
    $api.ByJob = $sessionClass.GetMethod('GetByJobAndTimeRangeWithLog', [type[]] @([guid], [datetime]))
    if ($null -eq $api.ByJob) {
        $api.Missing += 'CBackupSession.GetByJobAndTimeRangeWithLog(Guid, DateTime)'
        $api.ByJob = $sessionClass.GetMethod('GetByJob', [type[]] @([guid]))
        if ($null -eq $api.ByJob) { $api.Missing += 'CBackupSession.GetByJob(Guid)' }
    }
    return $api
}

function Get-BackupJobs {
    # All jobs whose type writes backups (and, if names are wanted, only those).
    param($Wanted)
    $jobClass = 'Veeam.Backup.Core.CBackupJob' -as [type]
    $getAll = $null
    if ($null -ne $jobClass) { $getAll = $jobClass.GetMethod('GetAll', [type[]] @()) }
    if ($null -ne $getAll) {
        $jobs = $getAll.Invoke($null, $null)
    } else {
        $jobs = Get-VBRJob -WarningAction SilentlyContinue
    }
    foreach ($job in $jobs) {
        if ($BackupJobTypes -notcontains [string] $job.JobType) { continue }
        if ($Wanted.Count -gt 0 -and -not $Wanted.Contains([string] $job.Name)) { continue }
        $job
    }
}

function Get-SessionShapeProblem {
    # Under StrictMode, reading a property an object lacks stops the run: a wrapper type without
    # BackupStats/Info/Progress is skipped and counted instead. $null when the session is usable.
    param($Session)
    foreach ($name in @('Id', 'JobId', 'JobName', 'JobType', 'State', 'Result', 'CreationTime', 'EndTime', 'BackupStats', 'Info')) {
        if ($null -eq $Session.PSObject.Properties[$name]) { return ('no_{0}:{1}' -f $name, $Session.GetType().Name) }
    }
    if ($null -eq $Session.BackupStats -or $null -eq $Session.Info) { return ('null_stats:{0}' -f $Session.GetType().Name) }
    return $null
}

function Get-ParentJob {
    # Per-machine child sessions name their parent in Info.PolicyTag (id) and Info.PolicyName.
    # Returns @(parent id, parent name, machine name), or $null for a session of its own job.
    param($Session)
    $tag = Get-OptionalValue $Session.Info 'PolicyTag'
    if ($null -eq $tag) { return $null }
    $parentId = [string] $tag
    if (-not $parentId -or $parentId -eq [string] [guid]::Empty -or $parentId -eq [string] $Session.JobId) { return $null }
    $parentName = [string] (Get-OptionalValue $Session.Info 'PolicyName')
    $machine = [string] $Session.JobName
    foreach ($separator in @(' - ', '\', '/')) {    # child jobs are named "<parent><separator><machine>"
        if ($parentName -and $machine.StartsWith($parentName + $separator)) {
            $machine = $machine.Substring($parentName.Length + $separator.Length)
            break
        }
    }
    return @($parentId, $parentName, $machine)
}

function ConvertTo-SessionRecord {
    # One contract session. Sizes and ratios as JSON integers, is_retry as a JSON boolean.
    param($Session, [datetime] $CreationUtc, [datetime] $EndUtc, $Parent)
    $jobId = [string] $Session.JobId
    $name = [string] $Session.JobName
    if (-not $name) { $name = [string] (Get-OptionalValue $Session 'Name') }
    $objectName = $null
    if ($null -ne $Parent) {
        $jobId = $Parent[0]
        $name = $Parent[1]
        $objectName = $Parent[2]
    }
    return [ordered]@{
        session_id             = [string] $Session.Id
        job_id                 = $jobId
        job_name               = $name
        job_type               = [string] $Session.JobType
        object_name            = $objectName
        algorithm              = [string] (Get-OptionalValue $Session.Info 'SessionAlgorithm')
        result                 = [string] $Session.Result
        is_retry               = [bool] (Get-OptionalValue $Session 'IsRetryMode')
        creation_time          = Format-UtcTime $CreationUtc
        end_time               = Format-UtcTime $EndUtc
        data_size_bytes        = [long] $Session.BackupStats.DataSize
        backup_size_bytes      = [long] $Session.BackupStats.BackupSize
        read_size_bytes        = [long] (Get-OptionalValue $Session 'Progress.ReadSize')
        transferred_size_bytes = [long] (Get-OptionalValue $Session 'Progress.TransferedSize')
        dedup_ratio_raw        = [int] $Session.BackupStats.DedupRatio
        compress_ratio_raw     = [int] $Session.BackupStats.CompressRatio
    }
}

function ConvertTo-CompressionLevel {
    # Veeam's integer (Get-VBRJob) or enum name (Get-VBRBackupCopyJob, Get-VBRComputerBackupJob).
    param($Value)
    if ($null -eq $Value) { return $null }
    $text = [string] $Value    # an enum gives its name, a number its digits
    if ($CompressionLevels.Values -contains $text) { return $text }
    if ($CompressionLevels.ContainsKey($text)) { return $CompressionLevels[$text] }
    return $null
}

function ConvertTo-BlockSizeKb {
    # Veeam's block size enum (KbBlockSize1024...), storage optimization name (LocalTarget...) or
    # a number, as KB; $null if unknown (Automatic: chosen per run).
    param($Value)
    if ($null -eq $Value) { return $null }
    if ($StorageOptimizationKb.ContainsKey([string] $Value)) { return $StorageOptimizationKb[[string] $Value] }
    $digits = [regex]::Match([string] $Value, '\d+').Value
    if (-not $digits) { return $null }
    $size = [int] $digits
    if ($BlockSizesKb -contains $size) { return $size }
    return $null
}

function ConvertTo-NullableBool {
    param($Value)
    if ($null -eq $Value) { return $null }
    return [bool] $Value
}

function Get-RepositoryRecord {
    # One plain repository as the contract describes it (null where this version hides a value).
    param($Repository)
    $type = [string] (Get-OptionalValue $Repository 'Type')
    return [ordered]@{
        repository_id             = [string] $Repository.Id
        name                      = [string] $Repository.Name
        type                      = $type
        dedup_appliance           = ConvertTo-NullableBool (Get-OptionalValue $Repository 'IsDedupStorage')
        decompress_before_storing = ConvertTo-NullableBool (Get-OptionalValue $Repository 'Options.Uncompress')
        align_blocks              = ConvertTo-NullableBool (Get-OptionalValue $Repository 'Options.OptimizeBlockAlign')
        fast_clone                = ConvertTo-NullableBool (Get-OptionalValue $Repository 'Options.IsFastCloneEnabled')
        object_storage            = [bool] ($type -match 'S3|Azure|Blob|Google|Wasabi|ObjectStorage|IBMCloud')
        scale_out                 = $false
    }
}

function Get-ScaleOutRecord {
    # A scale-out repository, described by itself: a flag is true or false when all its
    # performance extents agree, else null.
    param($ScaleOut, $Extents)
    $type = [string] (Get-OptionalValue $ScaleOut 'Type')
    if (-not $type) { $type = 'ScaleOut' }
    $record = [ordered]@{
        repository_id             = [string] $ScaleOut.Id
        name                      = [string] $ScaleOut.Name
        type                      = $type
        dedup_appliance           = $null
        decompress_before_storing = $null
        align_blocks              = $null
        fast_clone                = $null
        object_storage            = $false
        scale_out                 = $true
    }
    foreach ($flag in @('dedup_appliance', 'decompress_before_storing', 'align_blocks', 'fast_clone', 'object_storage')) {
        $values = @($Extents | ForEach-Object { $_[$flag] } | Select-Object -Unique)
        if ($values.Count -eq 1) { $record[$flag] = $values[0] } else { $record[$flag] = $null }
    }
    return $record
}

function Get-RepositoryIndex {
    # repository id -> contract record, plain and scale-out repositories alike.
    $index = @{}
    foreach ($repository in @(Get-VBRBackupRepository -WarningAction SilentlyContinue)) {
        $index[[string] $repository.Id] = Get-RepositoryRecord $repository
    }
    foreach ($scaleOut in @(Get-VBRBackupRepository -ScaleOut -WarningAction SilentlyContinue)) {
        $extents = @(Get-OptionalValue $scaleOut 'Extent' | ForEach-Object { Get-OptionalValue $_ 'Repository' } |
                Where-Object { $null -ne $_ } | ForEach-Object { Get-RepositoryRecord $_ })
        $index[[string] $scaleOut.Id] = Get-ScaleOutRecord $scaleOut $extents
    }
    return $index
}

function Get-JobSettingRecord {
    # One contract job: compression, block size, inline dedup, encryption and target repository.
    param($Id, $Name, $Type, $Compression, $BlockSize, $Dedup, $Encryption, $RepositoryId, $Repositories)
    $repository = $null
    if ($null -ne $RepositoryId -and $Repositories.ContainsKey([string] $RepositoryId)) { $repository = $Repositories[[string] $RepositoryId] }
    return [ordered]@{
        job_id            = [string] $Id
        job_name          = [string] $Name
        job_type          = [string] $Type
        compression_level = ConvertTo-CompressionLevel $Compression
        block_size_kb     = ConvertTo-BlockSizeKb $BlockSize
        inline_dedup      = ConvertTo-NullableBool $Dedup
        encryption        = ConvertTo-NullableBool $Encryption
        repository        = $repository
    }
}

function Get-JobSettings {
    # The storage settings of every backup job (VM, backup copy, agent), keyed by job id.
    param($Wanted, $Problems)
    $repositories = Get-RepositoryIndex
    $settings = [ordered]@{}
    foreach ($job in @(Get-VBRJob -WarningAction SilentlyContinue)) {
        if ($BackupJobTypes -notcontains [string] $job.JobType) { continue }
        $storage = Get-OptionalValue $job 'Options.BackupStorageOptions'
        $settings[[string] $job.Id] = Get-JobSettingRecord $job.Id $job.Name $job.JobType `
            (Get-OptionalValue $storage 'CompressionLevel') (Get-OptionalValue $storage 'StgBlockSize') `
            (Get-OptionalValue $storage 'EnableDeduplication') (Get-OptionalValue $storage 'StorageEncryptionEnabled') `
            (Get-OptionalValue $job 'Info.TargetRepositoryId') $repositories
    }
    foreach ($source in @('Get-VBRBackupCopyJob', 'Get-VBRComputerBackupJob')) {
        if ($null -eq (Get-Command -Name $source -ErrorAction SilentlyContinue)) {
            $Problems.Add(('{0} is not available: those jobs have unknown settings' -f $source)); continue
        }
        try {
            if ($source -eq 'Get-VBRBackupCopyJob') { $found = @(Get-VBRBackupCopyJob -WarningAction SilentlyContinue) }
            else { $found = @(Get-VBRComputerBackupJob -WarningAction SilentlyContinue) }
            foreach ($job in $found) {
                $storage = Get-OptionalValue $job 'StorageOptions'
                $target = Get-OptionalValue $job 'TargetRepository.Id'
                if ($null -eq $target) { $target = Get-OptionalValue $job 'BackupRepository.Id' }
                $dedup = Get-OptionalValue $storage 'EnableDataDeduplication'    # copy jobs; agent jobs have none
                if ($null -eq $dedup) { $dedup = Get-OptionalValue $storage 'EnableDeduplication' }
                $settings[[string] $job.Id] = Get-JobSettingRecord $job.Id $job.Name (Get-OptionalValue $job 'Type') `
                    (Get-OptionalValue $storage 'CompressionLevel') (Get-OptionalValue $storage 'StorageOptimizationType') `
                    $dedup (Get-OptionalValue $storage 'EnableEncryption') $target $repositories
            }
        } catch {
            $Problems.Add(('{0} failed, those jobs have unknown settings: {1}' -f $source, $_.Exception.Message))
        }
    }
    foreach ($id in @($settings.Keys)) {
        if ($Wanted.Count -gt 0 -and -not $Wanted.Contains([string] $settings[$id]['job_name'])) { $settings.Remove($id) }
    }
    return $settings
}

function Read-RawSessions {
    # The sessions of the widened window by the fastest path this build offers; records which
    # path ran and why. Throws when only the full scan is left and it is not allowed.
    param($Api, $Wanted, [datetime] $QueryFrom, [datetime] $QueryTo, $Problems)
    $raw = New-Object System.Collections.Generic.List[object]
    if ($null -ne $Api.ByType) {
        # Path 1 (fastest): one indexed query per job type the server defines, so agent, plug-in
        # and AHV sessions come too; the filter below keeps what holds backup data.
        $Report['session_path'] = 'CBackupSession.GetByTypeAndTimeInterval per job type'
        $Report['session_path_reason'] = 'indexed query by job type and time: the fastest path'
        foreach ($typeName in [System.Enum]::GetNames($Api.JobTypeEnum)) {
            Set-Phase ('reading sessions of job type ' + $typeName) -Step 'reading sessions'
            $typeValue = [System.Enum]::Parse($Api.JobTypeEnum, $typeName)
            try {
                foreach ($s in $Api.ByType.Invoke($null, [object[]] @($typeValue, $QueryFrom, $QueryTo))) { $raw.Add($s) }
            } catch {
                # one type Veeam cannot query (an internal job type) must not cost the others
                $Problems.Add(('sessions of job type {0} could not be read: {1}' -f $typeName, (Get-ErrorText $_)))
            }
        }
        return , $raw    # the list itself: a returned list would be unrolled (0 items: $null)
    }
    if ($null -ne $Api.ByPolicy -or $null -ne $Api.ByJob) {
        $jobs = @(Get-BackupJobs -Wanted $Wanted)
        if ($null -ne $Api.ByPolicy) {
            # Path 2: per job, with its per-machine child sessions.
            $Report['session_path'] = 'CBackupSession.GetAllSessionsByPolicyJobAndTimeRange per job'
            $Report['session_path_reason'] = 'GetByTypeAndTimeInterval is missing; indexed per job, child sessions included'
        } else {
            # Path 3: per job; child sessions of policies are not returned by this call.
            $Report['session_path'] = ('CBackupSession.{0} per job' -f $Api.ByJob.Name)
            $Report['session_path_reason'] = 'GetByTypeAndTimeInterval and GetAllSessionsByPolicyJobAndTimeRange are missing'
            $Problems.Add('per-machine child sessions (agent policies, VBR 12 backup copy jobs) are missing: ' +
                'CBackupSession.GetAllSessionsByPolicyJobAndTimeRange is not available')
        }
        foreach ($job in $jobs) {
            Set-Phase ('reading sessions of job ' + [string] $job.Name) -Step 'reading sessions'
            if ($null -ne $Api.ByPolicy) { $arguments = [object[]] @($job.Id, $QueryFrom, $QueryTo) }
            elseif ($Api.ByJob.Name -eq 'GetByJob') { $arguments = [object[]] @($job.Id) }
            else { $arguments = [object[]] @($job.Id, $QueryFrom) }
            $method = $Api.ByJob
            if ($null -ne $Api.ByPolicy) { $method = $Api.ByPolicy }
            foreach ($s in $method.Invoke($null, $arguments)) { $raw.Add($s) }
        }
        return , $raw    # the list itself: a returned list would be unrolled (0 items: $null)
    }
    $missing = 'this VBR build lacks every indexed session query: ' + ($Api.Missing -join '; ')
    if (-not $AllowFullSessionScan) {
        $Report['session_path'] = 'none'
        $Report['session_path_reason'] = $missing + '; the full session scan is not allowed (allow_full_session_scan)'
        if ($Diagnose) { $Problems.Add($Report['session_path_reason']); return , $raw }
        throw ($missing + '. Get-VBRBackupSession would read the whole session table (hours on large servers, ' +
            'an internal ~600 s timeout on VBR 13); set the allow_full_session_scan Param to allow it.')
    }
    # Path 4 (allowed fallback, slow): the supported cmdlet reads the whole session table.
    $Report['session_path'] = 'Get-VBRBackupSession (full session scan)'
    $Report['session_path_reason'] = $missing + '; allow_full_session_scan is set'
    $Problems.Add('the full session scan misses agent sessions (Get-VBRComputerBackupJobSession) and ' +
        'file-share sessions (Get-VBRUnstructuredBackupSession): those jobs are not collected')
    Set-Phase 'full session scan (Get-VBRBackupSession)'
    Get-VBRBackupSession | Where-Object { $_.CreationTime -ge $QueryFrom -and $_.CreationTime -lt $QueryTo } |
        ForEach-Object { $raw.Add($_) }
    return , $raw
}

$Progress = [hashtable]::Synchronized(@{ started = [datetime]::UtcNow; phase = 'starting'; step = 'starting'; phase_started = [datetime]::UtcNow })
$Timings = [ordered]@{}
$Report = @{ session_path = 'none'; session_path_reason = 'not reached' }
$heartbeat = $null
try {
    $heartbeat = Start-Heartbeat -State $Progress
    $windowStart = $From.ToUniversalTime()
    $windowEnd = $To.ToUniversalTime()
    if ($windowStart -ge $windowEnd) {
        throw ('-From {0} must be earlier than -To {1}' -f (Format-UtcTime $windowStart), (Format-UtcTime $windowEnd))
    }
    # Widened window for the server-side queries (they may compare local times); exact filter below.
    $queryFrom = $windowStart.ToLocalTime().AddDays(-1)
    $queryTo = $windowEnd.ToLocalTime().AddDays(1)

    $wanted = New-Object 'System.Collections.Generic.HashSet[string]' ([System.StringComparer]::OrdinalIgnoreCase)
    if ($JobName) {
        foreach ($name in $JobName) { if ($name) { [void] $wanted.Add($name) } }
    }
    if ($JobNameBase64) {
        foreach ($name in (ConvertFrom-JobNameBase64 -Encoded $JobNameBase64)) { [void] $wanted.Add($name) }
    }
    $problems = New-Object System.Collections.Generic.List[string]

    Set-Phase 'loading the Veeam PowerShell module'
    $moduleSource = Import-VeeamModule
    Set-Phase 'connecting to the local VBR server'
    Connect-LocalVbrServer
    Set-Phase 'probing the indexed session queries'
    $api = Get-SessionApi
    $vbrVersion = Get-VbrVersion
    $vbrHost = Get-VbrHostName

    $raw = Read-RawSessions -Api $api -Wanted $wanted -QueryFrom $queryFrom -QueryTo $queryTo -Problems $problems

    Set-Phase 'filtering sessions'
    $skipped = @{ running = 0; outside_window = 0; other_job_type = 0; other_job = 0; duplicate = 0; other_result = 0; other_algorithm = 0 }
    $perType = @{}
    $seen = New-Object 'System.Collections.Generic.HashSet[string]'
    $sessions = New-Object System.Collections.Generic.List[object]
    foreach ($s in $raw) {
        $shape = Get-SessionShapeProblem -Session $s
        if ($null -ne $shape) {
            if (-not $skipped.ContainsKey($shape)) { $skipped[$shape] = 0 }
            $skipped[$shape] += 1; continue
        }
        if (-not $seen.Add([string] $s.Id)) { $skipped['duplicate'] += 1; continue }
        if ($RunningStates -contains [string] $s.State -or ([datetime] $s.EndTime).Year -le 1900) {
            $skipped['running'] += 1; continue
        }
        $creationUtc = Get-UtcProperty -Session $s -Name 'CreationTime'
        if ($creationUtc -lt $windowStart -or $creationUtc -ge $windowEnd) { $skipped['outside_window'] += 1; continue }
        $type = [string] $s.JobType
        if ($BackupJobTypes -notcontains $type -and [long] $s.BackupStats.DataSize -le 0) { $skipped['other_job_type'] += 1; continue }
        $parent = Get-ParentJob -Session $s
        $ownerName = [string] $s.JobName
        if ($null -ne $parent) { $ownerName = $parent[1] }
        if ($wanted.Count -gt 0 -and -not $wanted.Contains($ownerName)) { $skipped['other_job'] += 1; continue }
        if ($Results -notcontains [string] $s.Result) { $skipped['other_result'] += 1; continue }
        if ($Algorithms -notcontains [string] (Get-OptionalValue $s.Info 'SessionAlgorithm')) { $skipped['other_algorithm'] += 1; continue }
        try {
            $endUtc = Get-UtcProperty -Session $s -Name 'EndTime'
            $sessions.Add((ConvertTo-SessionRecord -Session $s -CreationUtc $creationUtc -EndUtc $endUtc -Parent $parent))
        } catch {
            throw ('cannot read session {0} of job {1}: {2}' -f $s.Id, $s.JobId, $_.Exception.Message)
        }
        if (-not $perType.ContainsKey($type)) { $perType[$type] = 0 }
        $perType[$type] += 1
    }
    $skipText = ($skipped.Keys | Sort-Object | ForEach-Object { '{0}={1}' -f $_, $skipped[$_] }) -join ', '
    Write-Diagnostic ('{0} sessions read, {1} emitted; skipped: {2}' -f $raw.Count, $sessions.Count, $skipText)
    $typeText = ($perType.Keys | Sort-Object | ForEach-Object { '{0}={1}' -f $_, $perType[$_] }) -join ', '
    Write-Diagnostic ('sessions emitted per job type: ' + $typeText)

    Set-Phase 'reading job and repository settings'
    $jobSettings = [ordered]@{}
    try {
        $jobSettings = Get-JobSettings -Wanted $wanted -Problems $problems
    } catch {
        # Settings are for grading; the sessions are still worth scoring without them.
        $problems.Add('job settings could not be read, all jobs have unknown settings: ' + (Get-ErrorText $_))
    }
    Write-Diagnostic ('storage settings read for {0} jobs' -f $jobSettings.Count)
    foreach ($problem in $problems) { Write-Diagnostic ('MISSING: ' + $problem) }
    Set-Phase 'writing the document'

    $document = [ordered]@{
        schema_version = 2
        vbr_host       = [string] $vbrHost
        vbr_version    = [string] $vbrVersion
        collected_at   = Format-UtcTime ([datetime]::UtcNow)
        window_start   = Format-UtcTime $windowStart
        window_end     = Format-UtcTime $windowEnd
        sessions       = $sessions.ToArray()    # a plain object[]: stays a JSON array with 0 or 1 items
        jobs           = @($jobSettings.Values)
    }
    if ($Diagnose) {
        $document['diagnostics'] = [ordered]@{
            powershell_version   = [string] $PSVersionTable.PSVersion
            powershell_edition   = [string] (Get-OptionalValue $PSVersionTable 'PSEdition')
            module_source        = $moduleSource
            session_path         = $Report['session_path']
            session_path_reason  = $Report['session_path_reason']
            missing_queries      = @($api.Missing)
            sessions_read        = $raw.Count
            sessions_by_job_type = $perType
            skipped              = $skipped
            timings_s            = $Timings
            missing              = @($problems)
        }
    }
    $json = ConvertTo-Json -InputObject $document -Depth 8 -Compress

    # UTF-8 without BOM, written as bytes so neither host nor $OutputEncoding can add one.
    $utf8 = New-Object System.Text.UTF8Encoding($false)
    try { [Console]::OutputEncoding = $utf8 } catch { Write-Diagnostic 'cannot set the console output encoding' }
    $bytes = $utf8.GetBytes($json + "`n")
    $stdout = [Console]::OpenStandardOutput()
    $stdout.Write($bytes, 0, $bytes.Length)
    $stdout.Flush()
} catch {
    [Console]::Error.WriteLine('get_efficiency_data: ERROR: ' + (Get-ErrorText $_))
    Stop-Heartbeat $heartbeat
    exit 1
}
Stop-Heartbeat $heartbeat
exit 0
